"""payment intents: a charge is recorded before the gateway is called and settled after, with no lock held

A row is written with the invoice (or, for a purchase, before its invoice
exists) and its gateway idempotency key, status ``pending``; the charge is
made with no database transaction open; its outcome is recorded in a short
transaction of its own. The worker settles rows left ``pending`` or
``unknown`` by asking the gateway again with the same key. ``customers.version``
is bumped by every save of the account, so a run that charged meanwhile sees
whether the account changed.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.add_column("customers", sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.create_table(
        "payment_intents",
        sa.Column("id", Id, primary_key=True),
        sa.Column("tenant_id", Id, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("customer_id", Id, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("invoice_id", Id, sa.ForeignKey("invoices.id")),
        sa.Column("covers", sa.Text()),
        sa.Column("purchase", sa.String(60)),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_method", sa.String(200), nullable=False),
        sa.Column("gateway_customer", sa.String(120)),
        sa.Column("idempotency_key", sa.String(120), nullable=False, unique=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("code", sa.String(60)),
        sa.Column("reference", sa.String(120)),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_payment_intents_status", "payment_intents", ["status", "updated_at"])
    op.create_index("ix_payment_intents_invoice", "payment_intents", ["invoice_id", "customer_id"])


def downgrade() -> None:
    op.drop_index("ix_payment_intents_invoice", "payment_intents")
    op.drop_index("ix_payment_intents_status", "payment_intents")
    op.drop_table("payment_intents")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("version")
