"""Database URL, engine and migrations (Alembic, run programmatically)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_URL = "sqlite:///var/kakin.db"
BUSY_TIMEOUT_S = 10  # the longest a SQLite writer waits for the one before it (then "database is locked")


def database_url() -> str:
    return os.environ.get("KAKIN_DATABASE_URL", DEFAULT_URL)


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"poolclass": StaticPool} if path in ("", ":memory:") else {}
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # transactions are begun below, not by the driver
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            if path and path != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA wal_autocheckpoint=10000")  # checkpoint (and fsync) every ~40 MB of WAL, not 4 MB
            cur.close()

        writers = threading.RLock()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            # A writing transaction takes the write lock up front: a deferred one that reads and then
            # writes fails at once with "database is locked" when another connection wrote meanwhile.
            # Read-only units of work begin deferred and read their WAL snapshot without waiting.
            if conn.get_execution_options().get("kakin_readonly", False):
                conn.exec_driver_sql("BEGIN")
                return
            # Writers of this process queue on a lock first: SQLite's own busy handler polls in steps of up
            # to 100 ms, a waiting thread here wakes the moment the writer before it is done.
            if not writers.acquire(timeout=BUSY_TIMEOUT_S):  # bounded, like SQLite's own wait below
                raise sqlite3.OperationalError(f"database is locked (another writer held it over {BUSY_TIMEOUT_S} s)")
            conn.info["kakin_writer"] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                conn.info.pop("kakin_writer", None)
                writers.release()
                raise

        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _end(conn):  # type: ignore[no-untyped-def]
            if conn.info.pop("kakin_writer", None):
                writers.release()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (idempotent)."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
