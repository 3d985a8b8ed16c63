"""domains proved with a DNS TXT record; customers that sign in with a group name

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sign_in_group", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("verified_domain", sa.String(length=253), nullable=True))
        batch_op.create_unique_constraint("uq_customers_tenant_verified_domain", ["tenant_id", "verified_domain"])
    op.create_table(
        "domain_verifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.ForeignKey("tenants.id"),
                  nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.ForeignKey("customers.id"),
                  nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("customer_id", "domain", name="uq_domain_verifications_customer_domain"),
    )


def downgrade() -> None:
    op.drop_table("domain_verifications")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_constraint("uq_customers_tenant_verified_domain", type_="unique")
        batch_op.drop_column("verified_domain")
        batch_op.drop_column("sign_in_group")
