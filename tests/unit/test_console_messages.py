"""The console's message catalogs: every string its templates show is translated in Japanese and English, and the
error codes the console shows have a message in both languages (the ``errors`` catalog, shared with the portal)."""

from __future__ import annotations

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from kakin.domain import errors
from kakin.web import catalogs, i18n

TEMPLATES = i18n.CATALOGS.parent / "templates" / "console"
FROM_CODE = {"yen", "messages"}  # the dashboard charts' units (web/console/pages.py)


def _translated(domain: str, locale: str) -> set[str]:
    with open(i18n.CATALOGS / locale / "LC_MESSAGES" / f"{domain}.po", "rb") as f:
        return {m.id for m in read_po(f, locale=locale) if m.id and m.string}


def test_every_console_template_string_is_translated_in_both_catalogs() -> None:
    found = extract_from_dir(str(TEMPLATES), method_map=[("**.html", "jinja2")],
                             options_map={"**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}})
    wanted = {message for _, _, message, _, _ in found} | FROM_CODE
    assert len(wanted) > 150
    for locale in i18n.LOCALES:
        translated = _translated("console", locale)
        assert wanted - translated == set(), locale
        assert translated - wanted == set(), f"{locale}: strings no template uses"


def test_the_shared_error_messages_name_real_codes_in_both_languages() -> None:
    codes = {cls.code for cls in errors.every_error_class()} | {"sign_in_failed", "operator_locked", "session_ended"}
    ja, en = _translated("errors", "ja"), _translated("errors", "en")
    assert ja == en and ja <= codes and {"role_forbidden", "not_found", "sign_in_failed", "operator_locked"} <= ja
    assert catalogs.error_message("role_forbidden", "ja", "x") == "この操作はあなたの役割では行えません。オーナーに依頼してください。"
    assert catalogs.error_message("premium_id_taken", "en", "the error's own message") == "the error's own message"
