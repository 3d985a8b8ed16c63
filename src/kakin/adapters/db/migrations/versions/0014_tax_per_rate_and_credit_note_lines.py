"""tax per rate on invoices and credit notes; each line's rate (pending ones too); credit notes keep their lines

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("taxes", sa.Text(), nullable=True))
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tax_rate", sa.String(length=10), nullable=True))
    with op.batch_alter_table("pending_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tax_rate", sa.String(length=10), nullable=True))
    with op.batch_alter_table("credit_notes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("taxes", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("lines", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credit_notes", schema=None) as batch_op:
        batch_op.drop_column("lines")
        batch_op.drop_column("taxes")
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.drop_column("tax_rate")
    with op.batch_alter_table("pending_items", schema=None) as batch_op:
        batch_op.drop_column("tax_rate")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("taxes")
