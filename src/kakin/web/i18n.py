"""The portal's languages: message catalogs (Babel ``.po`` files, compiled when first loaded) and dates and yen
formatted per locale with Babel. Japanese is the default; English by the portal's switch."""

from __future__ import annotations

import io
from datetime import date, datetime
from functools import cache
from pathlib import Path

from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

LOCALES = ("ja", "en")
DEFAULT = "ja"
CATALOGS = Path(__file__).parent / "i18n"
DOMAIN = "portal"


@cache
def translations(locale: str) -> Translations:
    """The compiled catalog of ``locale`` (``i18n/<locale>/LC_MESSAGES/portal.po``, compiled in memory)."""
    with open(CATALOGS / locale / "LC_MESSAGES" / f"{DOMAIN}.po", "rb") as f:
        catalog = read_po(f, locale=locale, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def yen(amount: int, locale: str) -> str:
    """Integer yen as the locale writes it: ``￥1,800`` (ja), ``¥1,800`` (en)."""
    return format_currency(amount, "JPY", locale=locale)


def day(value: date | str | None, locale: str) -> str:
    """A date as the locale writes it in full: ``2026年12月3日`` (ja), ``December 3, 2026`` (en); empty for None."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return format_date(value, "long", locale=locale)


def number(value: int, locale: str) -> str:
    """A count with the locale's grouping: ``1,000``."""
    return format_decimal(value, locale=locale)


def moment(value: datetime | None, locale: str) -> str:
    """An instant, in its own zone (the caller converts it to the tenant's), as the locale writes it to the minute:
    ``2026年4月2日 10:00`` (ja), ``April 2, 2026, 10:00 AM`` (en); empty for None."""
    if value is None:
        return ""
    return format_datetime(value, "y年M月d日 H:mm" if locale == "ja" else "MMMM d, y, h:mm a", tzinfo=value.tzinfo,
                           locale=locale)
