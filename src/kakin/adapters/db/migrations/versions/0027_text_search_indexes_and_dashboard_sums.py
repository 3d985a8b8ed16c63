"""substring searches served by trigram indexes; the dashboard's monthly sums saved; the audit log by customer

The console's fragment searches (a customer's name or addressee, a member's
e-mail) read a trigram index instead of every row: on PostgreSQL GIN indexes
with ``gin_trgm_ops`` (extension ``pg_trgm``), which ILIKE uses by itself; on
SQLite FTS5 tables with the ``trigram`` tokenizer over those columns
(external content: they hold only the index), filled from the rows already
there and kept up to date by triggers. These objects exist on one database
only; ``tables.DIALECT_ONLY`` names them.

``dashboard_sums`` and ``dashboard_marks``: per tenant and series (invoices,
credit notes, a usage metric), the sums per day of every row with an id up
to the mark, saved by the worker (``services.series``), so that a process's
first dashboard reads the rows above the mark, not the whole table.

``ix_audit_log_customer``: a customer's timeline (its audit records, newest
first) read by index, not by walking the whole log backwards.

Revision ID: 0027
Revises: 0026
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# PostgreSQL: (index, table, column)
TRIGRAM_INDEXES = [
    ("ix_customers_name_trgm", "customers", "name"),
    ("ix_customers_addressee_trgm", "customers", "addressee"),
    ("ix_members_email_trgm", "members", "email"),
]
# SQLite: (FTS5 table, content table, columns)
TRIGRAM_TABLES = [
    ("customers_text", "customers", ["name", "addressee"]),
    ("members_text", "members", ["email"]),
]


def _sqlite_trigram(fts: str, table: str, columns: list[str]) -> None:
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    forget = f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old});"
    add = f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new});"
    op.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{table}', content_rowid='id', "
               "tokenize='trigram')")
    op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
    op.execute(f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {add} END")
    op.execute(f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {forget} END")
    op.execute(f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {cols} ON {table} BEGIN {forget} {add} END")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, table, column in TRIGRAM_INDEXES:
            op.execute(f"CREATE INDEX {name} ON {table} USING gin ({column} gin_trgm_ops)")
    elif dialect == "sqlite":
        for fts, table, columns in TRIGRAM_TABLES:
            _sqlite_trigram(fts, table, columns)
    op.create_index("ix_audit_log_customer", "audit_log", ["customer_id", "id"])
    op.create_table(
        "dashboard_marks",
        sa.Column("tenant_id", Id, sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("series", sa.String(80), primary_key=True),
        sa.Column("settled", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "dashboard_sums",
        sa.Column("tenant_id", Id, sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("series", sa.String(80), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dashboard_sums")
    op.drop_table("dashboard_marks")
    op.drop_index("ix_audit_log_customer", table_name="audit_log")
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for name, _, _ in reversed(TRIGRAM_INDEXES):
            op.execute(f"DROP INDEX IF EXISTS {name}")
    elif dialect == "sqlite":
        for fts, _, _ in reversed(TRIGRAM_TABLES):
            for what in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {fts}_{what}")
            op.execute(f"DROP TABLE IF EXISTS {fts}")
