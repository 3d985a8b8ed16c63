"""Render documents to PDF: Jinja2 templates, WeasyPrint, an embedded Noto CJK font.

A PDF is rendered only when fontconfig finds a font for Japanese (``:lang=ja``): without one
WeasyPrint would print empty boxes, so :func:`render_pdf` refuses with ``fonts_missing`` instead.
The lookup runs once per process and fontconfig file (:func:`require_japanese_font`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from kakin.domain.errors import FontsMissing

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_OF = {"qualified_invoice": "qualified_invoice.html", "receipt": "receipt.html", "credit_note": "credit_note.html"}
FONT_PACKAGE = "fonts-noto-cjk"  # the Debian package of the font the templates name (Noto Sans CJK JP)


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def render_html(document: dict[str, Any]) -> str:
    css = (TEMPLATES / "document.css").read_text(encoding="utf-8")
    return _env().get_template(TEMPLATE_OF[document["type"]]).render(d=document, css=css)


def render_pdf(document: dict[str, Any]) -> bytes:
    """The document as PDF bytes; raises FontsMissing (``fonts_missing``) when no Japanese font is installed."""
    require_japanese_font()
    from weasyprint import HTML  # type: ignore[import-untyped]  # imported here: loading Pango is slow and only PDFs need it

    return HTML(string=render_html(document)).write_pdf()  # type: ignore[no-any-return]


def require_japanese_font() -> None:
    """Raise FontsMissing, naming the package to install, unless fontconfig finds a font for Japanese.

    Reads the fontconfig configuration WeasyPrint reads (``FONTCONFIG_FILE`` when set); cached per file.
    """
    if not _cached_fonts(os.environ.get("FONTCONFIG_FILE") or None):
        raise FontsMissing(
            f"no font for Japanese is installed, so PDFs would show empty boxes instead of text; install the Debian "
            f"package {FONT_PACKAGE} (apt-get install {FONT_PACKAGE}, or scripts/system-deps.sh runtime) and restart kakin")


@lru_cache(maxsize=8)
def _cached_fonts(config_file: str | None) -> tuple[str, ...]:
    return japanese_fonts(config_file)


class _FcFontSet(ctypes.Structure):
    _fields_ = [("nfont", ctypes.c_int), ("sfont", ctypes.c_int), ("fonts", ctypes.POINTER(ctypes.c_void_p))]


def japanese_fonts(config_file: str | Path | None = None) -> tuple[str, ...]:
    """The families fontconfig lists for ``:lang=ja`` (sorted), under ``config_file`` or the default configuration.

    The same lookup as ``fc-list :lang=ja family``, through libfontconfig (which WeasyPrint loads anyway), so it
    needs no fontconfig command-line tools. Without libfontconfig: an empty tuple.
    """
    name = ctypes.util.find_library("fontconfig")
    if name is None:
        return ()
    fc = ctypes.CDLL(name)
    fc.FcConfigCreate.restype = ctypes.c_void_p
    fc.FcInitLoadConfigAndFonts.restype = ctypes.c_void_p
    fc.FcConfigParseAndLoad.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    fc.FcConfigBuildFonts.argtypes = [ctypes.c_void_p]
    fc.FcConfigDestroy.argtypes = [ctypes.c_void_p]
    fc.FcNameParse.restype = ctypes.c_void_p
    fc.FcNameParse.argtypes = [ctypes.c_char_p]
    fc.FcObjectSetBuild.restype = ctypes.c_void_p
    fc.FcFontList.restype = ctypes.POINTER(_FcFontSet)
    fc.FcFontList.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    fc.FcPatternGetString.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
    fc.FcFontSetDestroy.argtypes = [ctypes.POINTER(_FcFontSet)]
    fc.FcObjectSetDestroy.argtypes = [ctypes.c_void_p]
    fc.FcPatternDestroy.argtypes = [ctypes.c_void_p]
    if config_file is None:
        config = fc.FcInitLoadConfigAndFonts()
    else:
        config = fc.FcConfigCreate()
        if config and not (fc.FcConfigParseAndLoad(config, os.fsencode(config_file), 1) and fc.FcConfigBuildFonts(config)):
            fc.FcConfigDestroy(config)
            return ()
    if not config:
        return ()
    pattern = fc.FcNameParse(b":lang=ja")
    objects = fc.FcObjectSetBuild(b"family", None)
    found = fc.FcFontList(config, pattern, objects)
    families: set[str] = set()
    try:
        if found:
            for i in range(found.contents.nfont):
                value = ctypes.c_char_p()
                if fc.FcPatternGetString(found.contents.fonts[i], b"family", 0, ctypes.byref(value)) == 0 and value.value:
                    families.add(value.value.decode("utf-8", "replace"))
    finally:
        if found:
            fc.FcFontSetDestroy(found)
        fc.FcObjectSetDestroy(objects)
        fc.FcPatternDestroy(pattern)
        fc.FcConfigDestroy(config)
    return tuple(sorted(families))
