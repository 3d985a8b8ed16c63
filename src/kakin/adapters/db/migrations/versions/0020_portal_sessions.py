"""portal sessions: one-time links and the customer portal's sessions, stored hashed so they can be revoked

A row is made with the link's hash when the vendor's backend asks for a portal
session; opening the link (once, within 5 minutes) stores the session's hash
beside it. Only SHA-256 hashes of the random tokens are stored.

Revision ID: 0020
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0017"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("tenant_id", Id, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("customer_id", Id, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("member_id", Id, sa.ForeignKey("members.id"), nullable=False),
        sa.Column("link_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("link_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("session_hash", sa.String(64), unique=True),
        sa.Column("locale", sa.String(8), nullable=False),
        sa.Column("return_url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True)),
        sa.Column("last_seen_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_portal_sessions_customer", "portal_sessions", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_portal_sessions_customer", "portal_sessions")
    op.drop_table("portal_sessions")
