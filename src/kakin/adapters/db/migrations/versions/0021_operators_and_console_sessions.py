"""operators and console sessions: the vendor's staff who sign in to the operator console

An operator belongs to one tenant, signs in with an e-mail address (unique
across kakin: the sign-in form asks for nothing else) and a password stored as
an Argon2 hash, and has one of the API keys' roles. Failed attempts and the
lockout they lead to are kept on the row. A console session stores only the
SHA-256 of its random cookie token, so it can be revoked (sign-out everywhere).

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", Id, primary_key=True),
        sa.Column("tenant_id", Id, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_operators_tenant_id", "operators", ["tenant_id"])
    op.create_table(
        "console_sessions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("operator_id", Id, sa.ForeignKey("operators.id"), nullable=False),
        sa.Column("session_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_console_sessions_operator_id", "console_sessions", ["operator_id"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_operator_id", "console_sessions")
    op.drop_table("console_sessions")
    op.drop_index("ix_operators_tenant_id", "operators")
    op.drop_table("operators")
