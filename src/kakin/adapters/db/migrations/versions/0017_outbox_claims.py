"""outbox rows are claimed before they are sent: a claim token beside the status

A worker claims mail and webhook rows by a conditional update to ``sending``
with its own token and a lease (``next_attempt_at`` becomes the lease's end);
it records the outcome only where the token is still its own.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("claim", sa.String(32)))
    op.add_column("webhook_deliveries", sa.Column("claim", sa.String(32)))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("claim")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claim")
