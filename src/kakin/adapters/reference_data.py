"""Reference data shipped with kakin (see ``kakin/data/README.md`` for sources)."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

from kakin.domain.eligibility import LocalGovernment, Registry


@cache
def local_governments() -> Registry:
    """The 47 prefectures and 1,741 municipalities, by their JIS X 0402 codes."""
    text = resources.files("kakin").joinpath("data/local_governments.csv").read_text(encoding="utf-8")
    return Registry(LocalGovernment(r["code"], r["prefecture"], r["municipality"]) for r in csv.DictReader(text.splitlines()))
