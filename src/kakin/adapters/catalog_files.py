"""Read catalog files (TOML) and hand them to the validating parser."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kakin.domain.catalog import Catalog
from kakin.domain.catalog_schema import parse_catalog
from kakin.domain.errors import CatalogError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "catalogs"
SHIPPED = ("lineworks", "nipoplus", "line-oa")


def shipped_path(code: str) -> Path:
    return SHIPPED_DIR / f"{code}.toml"


def read_catalog_text(path: str | Path) -> str:
    """A catalog file's text; raises CatalogError naming the file when it is missing or not UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(str(path), "(file)", "no such file") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(str(path), "(file)", f"is not UTF-8 text ({exc.reason})") from None


def parse_catalog_text(text: str, name: str) -> Catalog:
    """A catalog from its TOML text (a file's, or a published version's); errors name ``name``, the key and why."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(name, "(syntax)", f"is not valid TOML: {exc}") from None
    catalog = parse_catalog(data, name)
    try:
        ZoneInfo(catalog.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CatalogError(name, "vendor.timezone", f"{catalog.timezone!r} is not an IANA time zone such as \"Asia/Tokyo\"") from None
    return catalog


def load_catalog_file(path: str | Path) -> Catalog:
    return parse_catalog_text(read_catalog_text(path), str(path))


@lru_cache(maxsize=32)
def _cached(path: str, mtime_ns: int) -> Catalog:
    return load_catalog_file(path)


def catalog_path(ref: str, base: Path | None = None) -> Path:
    """The file of a shipped catalog (by code: ``nipoplus``) or of a catalog file path (relative to ``base``);
    raises CatalogError when there is no such file."""
    if ref in SHIPPED:
        path = shipped_path(ref)
    else:
        path = Path(ref)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.exists():
            raise CatalogError(
                ref, "(file)",
                f"no such catalog: give a shipped catalog ({', '.join(SHIPPED)}) or the path of a catalog file",
            )
    return path


def resolve_catalog(ref: str, base: Path | None = None) -> Catalog:
    """A shipped catalog by code (``nipoplus``) or a catalog file by path, parsed (cached while the file is unchanged)."""
    path = catalog_path(ref, base)
    return _cached(str(path), path.stat().st_mtime_ns)
