"""eligibility applications for the local-government plan; verified accounts

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "eligibility_applications",
        sa.Column("id", ID, primary_key=True),
        sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("customer_id", ID, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False, unique=True),
        sa.Column("plan", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=6), nullable=False),
        sa.Column("applicant_email", sa.String(length=320), nullable=False),
        sa.Column("via_agency", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("email_needs_review", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("review_due", sa.Date(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
    )
    op.create_index("ix_eligibility_applications_tenant_code", "eligibility_applications", ["tenant_id", "code"])


def downgrade() -> None:
    op.drop_index("ix_eligibility_applications_tenant_code", table_name="eligibility_applications")
    op.drop_table("eligibility_applications")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("verified_at")
