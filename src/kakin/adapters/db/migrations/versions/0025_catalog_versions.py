"""catalog versions: a tenant's catalog published as numbered versions with an effective instant; each subscription,
phase, pending item and invoice line records the version that priced it

Tenants made before this migration get version 1 from their catalog file when they are first opened
(``services/tenancy.py``), so the file's content at that moment is what version 1 holds.

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "catalog_versions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("tenant_id", Id, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("published_by", sa.String(200), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("existing", sa.String(20), nullable=False),
        sa.Column("plan_moves", sa.Text(), nullable=False, server_default=sa.text("'{}'")),
        sa.UniqueConstraint("tenant_id", "number", name="uq_catalog_versions_tenant_number"),
    )
    for table in ("subscriptions", "subscription_phases"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("catalog_version", sa.Integer(), nullable=False, server_default=sa.text("1")))
    for table in ("invoice_lines", "pending_items"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("catalog_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in ("pending_items", "invoice_lines", "subscription_phases", "subscriptions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("catalog_version")
    op.drop_table("catalog_versions")
