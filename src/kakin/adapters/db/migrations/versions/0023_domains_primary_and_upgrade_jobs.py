"""domains in use, the primary domain's 24-hour lock, the vendor-provided domain, plan changes done by the worker

``domain_verifications`` gains ``verified_domain`` (the domain while it is in use by that customer: unique in a
tenant, so two customers never use one domain), ``provided`` (the vendor's GROUP.<suffix>, kept after deletion so it
is never issued again), ``next_check_at`` (the worker's next DNS look-up while it is pending, for 24 hours) and
``deleted_at``. ``customers.primary_domain_changed_at`` starts the 24-hour lock. ``plan_change_jobs``: a plan change
the worker completes (LINE WORKS lite → basic/premium), pending until it does.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("domain_verifications") as batch:
        batch.add_column(sa.Column("verified_domain", sa.String(253)))
        batch.add_column(sa.Column("provided", sa.Boolean(), nullable=False, server_default=sa.text("false")))
        batch.add_column(sa.Column("next_check_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True)))
        batch.create_unique_constraint("uq_domain_verifications_tenant_verified", ["tenant_id", "verified_domain"])
    # a verified domain that is still the customer's is in use; one a later verification replaced is pending again
    op.execute("UPDATE domain_verifications SET verified_domain = domain WHERE verified_at IS NOT NULL AND domain = "
               "(SELECT c.verified_domain FROM customers c WHERE c.id = domain_verifications.customer_id)")
    op.execute("UPDATE domain_verifications SET verified_at = NULL WHERE verified_domain IS NULL")
    op.execute("UPDATE domain_verifications SET next_check_at = created_at WHERE verified_domain IS NULL")
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("primary_domain_changed_at", sa.DateTime(timezone=True)))
    op.create_table(
        "plan_change_jobs",
        sa.Column("id", Id, primary_key=True),
        sa.Column("tenant_id", Id, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("customer_id", Id, sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("plan", sa.String(40), nullable=False),
        sa.Column("contract", sa.String(40)),
        sa.Column("seats", sa.Integer()),
        sa.Column("status", sa.String(20), nullable=False),  # pending | completed | failed
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("member", sa.String(40)),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("error_code", sa.String(60)),
    )
    op.create_index("ix_plan_change_jobs_status", "plan_change_jobs", ["status", "id"])
    op.create_index("ix_plan_change_jobs_customer", "plan_change_jobs", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_plan_change_jobs_customer", "plan_change_jobs")
    op.drop_index("ix_plan_change_jobs_status", "plan_change_jobs")
    op.drop_table("plan_change_jobs")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("primary_domain_changed_at")
    with op.batch_alter_table("domain_verifications") as batch:
        batch.drop_constraint("uq_domain_verifications_tenant_verified", type_="unique")
        batch.drop_column("deleted_at")
        batch.drop_column("next_check_at")
        batch.drop_column("provided")
        batch.drop_column("verified_domain")
