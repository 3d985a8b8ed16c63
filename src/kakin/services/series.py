"""Sums over append-only rows, kept up to date incrementally in each process (the dashboard's monthly series).

Invoices, credit notes and usage events are only ever inserted, and the columns summed (issue date, totals, tax;
month, quantity) never change afterwards. So a sum per day over a tenant's rows with id ≤ W stays right forever,
and a call only reads the rows above W (a primary-key range) and adds them: with a million invoices the dashboard
reads its tail, not the table. The first call in a process reads everything once.

Which rows are settled (folded into the kept sums): on SQLite every row read, since one writer at a time commits
its rows before the next takes higher ids. On PostgreSQL a sequence hands ids out before commit, so a lower id can
still appear after a higher one was read. A highest id H read at one call is folded in once a later call, made at
least :data:`GRACE_SECONDS` after it, saw transaction ids up to X (its snapshot's xmax) and every transaction below
X has ended (the current snapshot's xmin ≥ X): whoever took an id ≤ H had started writing by then, so it has
committed or rolled back. Until then the rows above the settled mark are read again on every call. If a table's
highest id falls below the mark (the database was recreated) the sums start over.

Saved sums (migration 0027): the worker saves each tenant's settled sums and mark (:func:`save`, from
``analytics.save_sums``), and a call given ``saved`` takes them over whenever their mark is above its own: a
process's first dashboard reads the saved sums (a row per day) and the rows above their mark, not the whole table.
What is saved was settled by the rules above, so the figures stay exact; the mark only decides how much is read.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kakin.adapters.db import reports_repo
from kakin.adapters.db.store import UnitOfWork

GRACE_SECONDS = 1.0  # PostgreSQL: a writer that took an id has its transaction id this long after (microseconds)

Fetch = Callable[[int, int | None], reports_repo.Sums]  # (after id, until id) → (highest id, sums per day)


@dataclass
class _Series:
    settled: int = 0  # rows with an id up to this are in ``sums``
    sums: dict[date, int] = field(default_factory=dict)
    seen: list[tuple[float, int, int]] = field(default_factory=list)  # PostgreSQL: (when, highest id read, xmax)
    lock: threading.Lock = field(default_factory=threading.Lock)


_kept: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], _Series]] = weakref.WeakKeyDictionary()
_kept_lock = threading.Lock()


def _series(uow: UnitOfWork, key: tuple[Any, ...]) -> _Series:
    with _kept_lock:
        return _kept.setdefault(uow.engine, {}).setdefault(key, _Series())


def _add(into: dict[date, int], rows: list[tuple[date, int]]) -> None:
    for day, amount in rows:
        into[day] = into.get(day, 0) + amount


def _take_saved(uow: UnitOfWork, series: _Series, saved: tuple[int, str]) -> None:
    """Take over the sums saved under ``saved`` = (tenant id, series name) when they reach further than ours."""
    if uow.reports.saved_mark(*saved) <= series.settled:
        return
    mark, rows = uow.reports.saved_sums(*saved)
    if mark > series.settled:
        series.settled, series.sums = mark, dict(rows)
        series.seen = [seen for seen in series.seen if seen[1] > mark]


def sums(uow: UnitOfWork, table: str, key: tuple[Any, ...], fetch: Fetch,
         clock: Callable[[], float] = time.monotonic, saved: tuple[int, str] | None = None) -> dict[date, int]:
    """The sums per day (or month) over every row ``fetch`` reads, as of this call: the settled sums kept for
    (``uow``'s engine, ``table``, ``key``) plus the rows above them, read now. ``table`` names the table whose
    highest id is checked (``invoices``, ``credit_notes``, ``usage_events``); ``fetch(after, until)`` is one of
    ``reports_repo``'s ``*_sums`` for the tenant. ``saved`` = (tenant id, series name): the sums the worker saved
    under that name are taken over when their mark is above the kept one (a primary-key read per call)."""
    series = _series(uow, (table, *key))
    with series.lock:
        if saved is not None:
            _take_saved(uow, series, saved)
        if series.settled and uow.reports.highest_id(table) < series.settled:
            series.settled, series.sums, series.seen = 0, {}, []  # the table was emptied or recreated
        highest, tail = fetch(series.settled, None)
        if uow.reports.commit_ordered_ids():
            _add(series.sums, tail)
            series.settled = highest
            return dict(series.sums)
        now, (xmin, xmax) = clock(), uow.reports.snapshot()
        series.seen = [*series.seen[-50:], (now, highest, xmax)]
        result = dict(series.sums)
        _add(result, tail)
        ended = [at for at, _, later_xmax in series.seen if xmin >= later_xmax]  # calls whose writers all ended
        ripe = [mark for at, mark, _ in series.seen if any(later >= at + GRACE_SECONDS for later in ended)]
        if ripe and max(ripe) > series.settled:
            mark = max(ripe)
            _, settled_rows = fetch(series.settled, mark)
            _add(series.sums, settled_rows)
            series.settled = mark
            series.seen = [seen for seen in series.seen if seen[1] > mark]
        return result


def save(uow: UnitOfWork, table: str, key: tuple[Any, ...], saved: tuple[int, str]) -> bool:
    """Save the sums kept for (``uow``'s engine, ``table``, ``key``) — those settled by earlier :func:`sums` calls —
    under ``saved`` = (tenant id, series name), unless what is saved already reaches as far; ``uow`` writes.
    Returns whether they were saved."""
    series = _series(uow, (table, *key))
    with series.lock:
        settled, kept = series.settled, dict(series.sums)
    if not settled:
        return False
    return uow.reports.save_sums(saved[0], saved[1], settled, kept)
