"""The portal's message catalogs: every string its templates show is translated in Japanese and English."""

from __future__ import annotations

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from kakin.web import i18n

TEMPLATES = i18n.CATALOGS.parent / "templates" / "portal"  # the console's: tests/unit/test_console_messages.py


def template_strings() -> set[str]:
    found = extract_from_dir(str(TEMPLATES), method_map=[("**.html", "jinja2")],
                             options_map={"**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}})
    return {message for _, _, message, _, _ in found}


def test_every_template_string_is_translated_in_both_catalogs() -> None:
    wanted = template_strings()
    assert len(wanted) > 50
    for locale in i18n.LOCALES:
        with open(i18n.CATALOGS / locale / "LC_MESSAGES" / "portal.po", "rb") as f:
            catalog = read_po(f, locale=locale)
        translated = {m.id for m in catalog if m.id and m.string}
        assert wanted - translated == set(), locale
        assert translated - wanted == set(), f"{locale}: strings no template uses"


def test_dates_and_yen_are_written_as_each_locale_writes_them() -> None:
    assert i18n.yen(1800, "ja") == "￥1,800"
    assert i18n.yen(1800, "en") == "¥1,800"
    assert i18n.day("2026-06-03", "ja") == "2026年6月3日"
    assert i18n.day("2026-06-03", "en") == "June 3, 2026"
    assert i18n.translations("ja").gettext("Billing history") == "請求履歴"
