"""Operators from the command line (kakin operator create/list/disable) and the demo console sign-ins kakin serve
prints: a password shown once, stored as an Argon2 hash, that opens the console."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from test_cli import KAKIN, run

from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.serve import demo_console_sign_ins, ensure_reference_tenants
from kakin.services import operators

NOW = datetime(2026, 5, 3, 1, 0, tzinfo=UTC)


def _database(tmp_path: Path) -> Path:
    db = tmp_path / "k.db"
    assert run("tenant", "create", "--code", "acme", "--name", "Acme", "--catalog", "nipoplus", db=db).returncode == 0
    return db


def _signs_in(db: Path, email: str, password: str) -> bool:
    engine = make_engine(f"sqlite:///{db}")
    try:
        with UnitOfWork(engine) as uow:
            return operators.sign_in(uow, email, password, NOW).token is not None
    finally:
        engine.dispose()


def test_operator_create_prints_a_one_time_password_that_signs_in_and_is_stored_hashed(tmp_path: Path) -> None:
    db = _database(tmp_path)
    made = run("operator", "create", "--tenant", "acme", "--email", "Sato@Acme.example", "--role", "billing_admin", db=db)
    assert made.returncode == 0, made.stderr
    password = re.search(r"password \(shown once; stored hashed\): (\S+)", made.stdout).group(1)  # type: ignore[union-attr]
    assert len(password) >= 12 and _signs_in(db, "sato@acme.example", password)
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT password_hash FROM operators").fetchone()
    assert stored.startswith("$argon2id$") and password not in stored
    listed = run("operator", "list", "--tenant", "acme", db=db)
    assert "sato@acme.example" in listed.stdout and "billing_admin" in listed.stdout
    again = run("operator", "create", "--tenant", "acme", "--email", "sato@acme.example", "--role", "viewer", db=db)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_password_stdin_is_used_and_never_printed_and_disable_stops_sign_in(tmp_path: Path) -> None:
    db = _database(tmp_path)
    env = {**os.environ, "KAKIN_DATABASE_URL": f"sqlite:///{db}"}
    made = subprocess.run([*KAKIN, "operator", "create", "--tenant", "acme", "--email", "r@acme.example", "--role",
                           "reviewer", "--password-stdin"], input="a long enough secret\n", capture_output=True,
                          text=True, timeout=120, env=env)
    assert made.returncode == 0, made.stderr
    assert "a long enough secret" not in made.stdout and _signs_in(db, "r@acme.example", "a long enough secret")
    short = subprocess.run([*KAKIN, "operator", "create", "--tenant", "acme", "--email", "s@acme.example", "--role",
                            "viewer", "--password-stdin"], input="short\n", capture_output=True, text=True, timeout=120,
                           env=env)
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    assert run("operator", "disable", "--tenant", "acme", "--email", "r@acme.example", db=db).returncode == 0
    assert not _signs_in(db, "r@acme.example", "a long enough secret")
    bad_role = run("operator", "create", "--tenant", "acme", "--email", "x@acme.example", "--role", "root", db=db)
    assert bad_role.returncode == 2 and "role must be one of" in bad_role.stderr


def test_serve_gives_each_reference_vendor_a_demo_console_owner_with_a_fresh_password(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    migrate(engine)
    ensure_reference_tenants(engine, CardSimulator(), NOW)
    first = demo_console_sign_ins(engine, NOW)
    assert [(code, email) for code, email, _ in first] == [
        ("nipoplus", "owner@nipoplus.demo.kakin"), ("lineworks", "owner@lineworks.demo.kakin"),
        ("line-oa", "owner@line-oa.demo.kakin")]
    second = demo_console_sign_ins(engine, NOW)  # the next start: a new password, the old one no longer works
    with UnitOfWork(engine) as uow:
        assert operators.sign_in(uow, first[0][1], first[0][2], NOW).token is None
        assert operators.sign_in(uow, second[0][1], second[0][2], NOW).token is not None
    kept = demo_console_sign_ins(engine, NOW, "a fixed demo password")
    assert {p for _, _, p in kept} == {"a fixed demo password"}
    engine.dispose()
