"""frozen issuer and recipient on invoices and credit notes; the acting member on audit records

Revision ID: 0016
Revises: 0015

Invoices and credit notes keep the issuer and the recipient they were finalized with. Rows written before this
revision are given the vendor and the customer's billing profile as they are at the upgrade: what their documents
showed until then.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

PARTY_COLUMNS = (("issuer_name", 200), ("issuer_registration_number", 14), ("issuer_address", 500),
                 ("recipient_name", 300), ("recipient_postal_code", 8), ("recipient_address", 500))
# the recipient is the addressee (宛名) the customer chose, else its name; blank fields print as empty
BACKFILL = """
UPDATE {table} SET
  issuer_name = (SELECT t.name FROM tenants t WHERE t.id = {table}.tenant_id),
  issuer_registration_number = (SELECT t.registration_number FROM tenants t WHERE t.id = {table}.tenant_id),
  issuer_address = (SELECT COALESCE(t.address, '') FROM tenants t WHERE t.id = {table}.tenant_id),
  recipient_name = (SELECT COALESCE(NULLIF(c.addressee, ''), c.name) FROM customers c WHERE c.id = {table}.customer_id),
  recipient_postal_code = (SELECT COALESCE(c.postal_code, '') FROM customers c WHERE c.id = {table}.customer_id),
  recipient_address = (SELECT COALESCE(c.address, '') FROM customers c WHERE c.id = {table}.customer_id)
"""


def upgrade() -> None:
    for table in ("invoices", "credit_notes"):
        with op.batch_alter_table(table) as batch_op:
            for name, length in PARTY_COLUMNS:
                batch_op.add_column(sa.Column(name, sa.String(length), nullable=True))
        op.execute(BACKFILL.format(table=table))
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.add_column(sa.Column("member", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.drop_column("member")
    for table in ("credit_notes", "invoices"):
        with op.batch_alter_table(table) as batch_op:
            for name, _ in reversed(PARTY_COLUMNS):
                batch_op.drop_column(name)
