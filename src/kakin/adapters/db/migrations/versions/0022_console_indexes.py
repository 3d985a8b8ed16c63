"""indexes for the operator console's figures and searches

Customers by creation time (new this month); invoices and credit notes by issue
date and by total (電子帳簿保存法's date and amount searches, newest first) and
partial indexes of open invoices (with what the open and overdue amounts sum)
and of void ones (their sales are taken off); credit notes by
customer (the counterparty search); subscriptions by product and plan with what
the recurring revenue sums (an index-only scan, in GROUP BY order) and by the
date they ended (churn); customer names and addressees, and members' e-mails with their
customer (a fragment search scans the index, not the table).

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_customers_tenant_created", "customers", ["tenant_id", "created_at"]),
    ("ix_invoices_tenant_issued", "invoices", ["tenant_id", "issued_on", "id"]),
    ("ix_invoices_tenant_total", "invoices", ["tenant_id", "total"]),
    ("ix_credit_notes_tenant_issued", "credit_notes", ["tenant_id", "issued_on", "id"]),
    ("ix_credit_notes_tenant_total", "credit_notes", ["tenant_id", "total"]),
    ("ix_credit_notes_customer", "credit_notes", ["customer_id"]),
    ("ix_subscriptions_tenant_plans", "subscriptions",
     ["tenant_id", "product", "ended", "plan", "contract", "status", "seats"]),
    ("ix_subscriptions_tenant_canceled", "subscriptions", ["tenant_id", "canceled_on"]),
    ("ix_customers_tenant_names", "customers", ["tenant_id", "name", "addressee"]),
    ("ix_members_tenant_email", "members", ["tenant_id", "email", "customer_id"]),
]


# partial indexes of open invoices (what the open and overdue amounts sum) and of void ones (sales taken off)
PARTIAL = [
    ("ix_invoices_open", ["tenant_id", "total", "credited", "first_failed_at", "due_on"], "status = 'open'"),
    ("ix_invoices_void", ["tenant_id", "issued_on", "total", "credit_applied", "tax"], "status = 'void'"),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    for name, columns, where in PARTIAL:
        op.create_index(name, "invoices", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, _, _ in reversed(PARTIAL):
        op.drop_index(name, table_name="invoices")
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
