"""Message catalogs shared by the web interfaces: one Babel domain per interface (``portal``, ``console``) and the
``errors`` domain, the message of each stable error code in each language, which the portal and the console share.

Catalogs are ``i18n/<locale>/LC_MESSAGES/<domain>.po``, compiled in memory when first loaded.
"""

from __future__ import annotations

import io
from functools import cache

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from .i18n import CATALOGS


@cache
def translations(domain: str, locale: str) -> Translations:
    """The compiled catalog ``domain`` of ``locale``."""
    with open(CATALOGS / locale / "LC_MESSAGES" / f"{domain}.po", "rb") as f:
        catalog = read_po(f, locale=locale, domain=domain)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=domain)


def error_message(code: str, locale: str, fallback: str) -> str:
    """What to tell a person about error ``code`` in ``locale`` (the ``errors`` catalog's msgid is the code);
    ``fallback`` (the error's own English message) when the catalog has none."""
    text = translations("errors", locale).gettext(code)
    return fallback if text == code else str(text)
