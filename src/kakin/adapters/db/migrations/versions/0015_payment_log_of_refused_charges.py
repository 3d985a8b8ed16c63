"""payment attempts of refused sign-ups and upgrades (no invoice), and sign-ups awaiting 3-D Secure

A charge declined at sign-up or upgrade refuses the command and issues no
invoice, yet its attempt stays in the payment log: attempts name their
customer, and the invoice is optional. An invoice of a sign-up awaiting 3-D
Secure expires (is voided) at ``expires_at``.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True))
        batch_op.alter_column("invoice_id", existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        batch_op.create_foreign_key(op.f("fk_payment_attempts_customer_id_customers"), "customers", ["customer_id"], ["id"])
    op.execute("UPDATE payment_attempts SET customer_id = "
               "(SELECT invoices.customer_id FROM invoices WHERE invoices.id = payment_attempts.invoice_id)")
    op.create_index("ix_payment_attempts_customer", "payment_attempts", ["customer_id", "id"])
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
    op.drop_index("ix_payment_attempts_customer", table_name="payment_attempts")
    op.execute("DELETE FROM payment_attempts WHERE invoice_id IS NULL")
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_payment_attempts_customer_id_customers"), type_="foreignkey")
        batch_op.alter_column("invoice_id", existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)
        batch_op.drop_column("customer_id")
