"""one subscription phase row per effective date (the audit log keeps every change)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # keep the last record of each day: the state at the end of that day
    op.execute("DELETE FROM subscription_phases WHERE id NOT IN "
               "(SELECT max(id) FROM subscription_phases GROUP BY subscription_id, start)")
    with op.batch_alter_table("subscription_phases", schema=None) as batch_op:
        batch_op.drop_index("ix_phases_subscription")
        batch_op.create_index("uq_phases_subscription_start", ["subscription_id", "start"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("subscription_phases", schema=None) as batch_op:
        batch_op.drop_index("uq_phases_subscription_start")
        batch_op.create_index("ix_phases_subscription", ["subscription_id", "start"], unique=False)
