"""Test fixtures: databases on both backends.

``engine`` runs a test on SQLite and on PostgreSQL. PostgreSQL is a throwaway
cluster started for the session as the ``postgres`` user on 127.0.0.1 (or the
server named by KAKIN_TEST_POSTGRES_URL). Without a PostgreSQL installation the
PostgreSQL half is skipped with a loud reason, except in CI, where that fails.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, create_engine, text

from kakin.adapters.db.migrate import make_engine, migrate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as_postgres(cmd: str) -> None:
    if os.geteuid() == 0:
        subprocess.run(["su", "postgres", "-c", cmd], check=True, capture_output=True)
    else:
        subprocess.run(["bash", "-c", cmd], check=True, capture_output=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str | None]:
    """A PostgreSQL server URL for the session, or None where none can be had outside CI."""
    url = os.environ.get("KAKIN_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: run ./scripts/system-deps.sh (CI must test both databases)")
        yield None
        return
    bindir = os.path.dirname(initdb[-1])
    base = tempfile.mkdtemp(prefix="kakin-pg-")
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = _free_port()
    _run_as_postgres(f"{bindir}/initdb -D {base}/data -U postgres -A trust -E UTF8 --locale=C.UTF-8")
    _run_as_postgres(
        f"{bindir}/pg_ctl -D {base}/data -l {base}/log -w start "
        f"-o '-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100'"
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _run_as_postgres(f"{bindir}/pg_ctl -D {base}/data -m immediate -w stop")
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def fresh_postgres_database(server: str | None) -> Iterator[str]:
    """A new, empty database on the session's server, dropped afterwards."""
    if server is None:
        pytest.skip("PostgreSQL not installed here (./scripts/system-deps.sh installs it); CI runs this half")
    name = f"kakin_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(postgres_server: str | None) -> Iterator[str]:
    """A fresh, empty PostgreSQL database."""
    with fresh_postgres_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/kakin.db"
        return
    yield request.getfixturevalue("pg_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    migrate(eng)
    yield eng
    eng.dispose()


class DnsZone:
    """A DNS server on 127.0.0.1 (dnslib) answering TXT queries from ``txt`` (name → values); other names are
    NXDOMAIN. ``nameserver`` is its ``host:port`` for ``KAKIN_DNS_NAMESERVER`` or ``TxtResolver``."""

    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.queries: list[str] = []
        self.nameserver = ""

    def resolve(self, request: object, handler: object) -> object:
        from dnslib import QTYPE, RR, TXT

        reply = request.reply()  # type: ignore[attr-defined]
        name = str(request.q.qname).rstrip(".").lower()  # type: ignore[attr-defined]
        self.queries.append(name)
        if name not in self.txt:
            reply.header.rcode = 3  # NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:  # type: ignore[attr-defined]
            for value in self.txt[name]:
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(value), ttl=60))
        return reply


@pytest.fixture
def dns_zone() -> Iterator[DnsZone]:
    """A loopback DNS server for the test (see :class:`DnsZone`)."""
    from dnslib.server import DNSLogger, DNSServer

    zone = DnsZone()
    server = DNSServer(zone, port=0, address="127.0.0.1", logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    zone.nameserver = f"127.0.0.1:{server.server.server_address[1]}"
    try:
        yield zone
    finally:
        server.stop()
