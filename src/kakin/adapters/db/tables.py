"""The schema, as SQLAlchemy Core tables. The domain never imports this module.

Money columns are integer yen. Dates are tenant-local billing dates; instants
are UTC. History is append-only: subscription phases and the audit log are
only ever inserted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer, "sqlite")


class UtcDateTime(TypeDecorator):  # type: ignore[type-arg]
    """An instant stored as UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)  # SQLite autoincrements INTEGER PRIMARY KEY only

def party_columns() -> list[Column[Any]]:
    """The issuer and the recipient a finalized document was written with (invoices, credit notes): a later change of
    the vendor or of the customer's billing profile applies to later documents only."""
    return [
        Column("issuer_name", String(200)),
        Column("issuer_registration_number", String(14)),
        Column("issuer_address", String(500)),
        Column("recipient_name", String(300)),  # the addressee (宛名), or the customer's name
        Column("recipient_postal_code", String(8)),
        Column("recipient_address", String(500)),
    ]


tenants = Table(
    "tenants", metadata,
    Column("id", Id, primary_key=True),
    Column("code", String(40), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("catalog", String(500), nullable=False),  # shipped catalog code or catalog file path
    Column("timezone", String(64), nullable=False),
    Column("registration_number", String(14)),  # T + 13 digits, for qualified invoices
    Column("address", String(500)),
    Column("invoice_prefix", String(20), nullable=False),
    Column("next_invoice_seq", Integer, nullable=False, server_default=text("1")),
    Column("next_credit_note_seq", Integer, nullable=False, server_default=text("1")),
    Column("created_at", UtcDateTime(), nullable=False),
)

# A tenant's catalog as published versions (issue 13): new subscriptions take the latest in effect; `existing` says
# whether existing ones move at their next period (next_period) or keep their version (never).
catalog_versions = Table(
    "catalog_versions", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("content", Text, nullable=False),  # the catalog file's TOML text, as published
    Column("sha256", String(64), nullable=False),  # of the content's UTF-8 bytes
    Column("source", String(500), nullable=False),  # the file or shipped catalog it was published from
    Column("published_by", String(200), nullable=False),
    Column("published_at", UtcDateTime(), nullable=False),
    Column("effective_at", UtcDateTime(), nullable=False),
    Column("existing", String(20), nullable=False),  # next_period | never
    Column("plan_moves", Text, nullable=False, server_default=text("'{}'")),  # JSON {"old": "new"}
    UniqueConstraint("tenant_id", "number", name="uq_catalog_versions_tenant_number"),
)

test_clocks = Table(
    "test_clocks", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("frozen_time", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

customers = Table(
    "customers", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("key", String(200), nullable=False),
    Column("name", String(300), nullable=False),
    Column("payment_method", String(200)),  # a gateway token, never a card number
    Column("members", Integer, nullable=False, server_default=text("0")),
    Column("credit", BigInteger, nullable=False, server_default=text("0")),
    Column("basic_id", String(20)),
    Column("next_due_at", UtcDateTime()),
    Column("test_clock_id", ForeignKey("test_clocks.id")),  # simulated time instead of the real clock
    Column("addressee", String(300)),  # 宛名 on receipts; the customer's name when empty
    Column("postal_code", String(8)),  # 123-4567
    Column("address", String(500)),
    Column("billing_email", String(320)),
    Column("gateway_customer", String(120)),  # the payment gateway's customer id (Stripe: cus_…)
    Column("collection", String(20), nullable=False, server_default=text("'card'")),  # card | bank_transfer
    Column("deleted_on", Date),  # 退会: the organization was deleted (its invoices are kept)
    Column("sign_in_group", String(100)),  # members sign in as id@group
    Column("verified_domain", String(253)),  # the primary domain (in use: domain_verifications); one customer per domain
    Column("verified_at", UtcDateTime()),  # 認証済アカウント: granted by the vendor's reviewers
    Column("verification_requested_at", UtcDateTime()),  # the customer applied for it: name and premium ID fixed
    Column("primary_domain_changed_at", UtcDateTime()),  # the primary domain cannot change again for 24 hours
    Column("created_at", UtcDateTime(), nullable=False),
    # bumped by every save of the account: a run that charged with no lock held sees whether it changed meanwhile
    Column("version", Integer, nullable=False, server_default=text("0")),
    UniqueConstraint("tenant_id", "key", name="uq_customers_tenant_key"),
    UniqueConstraint("tenant_id", "basic_id", name="uq_customers_tenant_basic_id"),
    UniqueConstraint("tenant_id", "verified_domain", name="uq_customers_tenant_verified_domain"),
)
Index("ix_customers_due", customers.c.tenant_id, customers.c.next_due_at)
Index("ix_customers_tenant_created", customers.c.tenant_id, customers.c.created_at)  # the console: new this month
# the console: a fragment of a name or addressee scans this index, not the table
Index("ix_customers_tenant_names", customers.c.tenant_id, customers.c.name, customers.c.addressee)

subscriptions = Table(
    "subscriptions", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("product", String(40), nullable=False),
    Column("plan", String(40), nullable=False),
    Column("contract", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("seats", Integer, nullable=False),
    Column("anchor", Date, nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("trial_end", Date),
    Column("term_anchor", Date),
    Column("pending", Text),  # JSON of a scheduled change
    Column("canceled_on", Date),
    Column("ended", Boolean, nullable=False, server_default=text("false")),
    Column("value", String(40)),
    Column("notified", String(40)),  # the last notice sent for it
    Column("created_at", UtcDateTime(), nullable=False),
    Column("catalog_version", Integer, nullable=False, server_default=text("1")),  # the version its prices come from
)
Index("ix_subscriptions_customer", subscriptions.c.customer_id, subscriptions.c.ended)
# the console: MRR (an index-only scan in GROUP BY order) and churn
Index("ix_subscriptions_tenant_plans", subscriptions.c.tenant_id, subscriptions.c.product, subscriptions.c.ended,
      subscriptions.c.plan, subscriptions.c.contract, subscriptions.c.status, subscriptions.c.seats)
Index("ix_subscriptions_tenant_canceled", subscriptions.c.tenant_id, subscriptions.c.canceled_on)
Index(
    "uq_subscriptions_addon_value_in_use",
    subscriptions.c.tenant_id, subscriptions.c.product, subscriptions.c.value,
    unique=True,
    sqlite_where=text("ended = 0 AND value IS NOT NULL"),
    postgresql_where=text("ended = false AND value IS NOT NULL"),
)

subscription_phases = Table(
    "subscription_phases", metadata,
    Column("id", Id, primary_key=True),
    Column("subscription_id", ForeignKey("subscriptions.id"), nullable=False),
    Column("start", Date, nullable=False),  # effective from this tenant-local date, to the next row's
    Column("plan", String(40), nullable=False),
    Column("contract", String(40), nullable=False),
    Column("seats", Integer, nullable=False),
    Column("members", Integer, nullable=False),
    Column("billable", Boolean, nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("catalog_version", Integer, nullable=False, server_default=text("1")),  # the version its days are priced with
)
# One row per effective date: a later change on the same day replaces that day's state (the audit log keeps each change).
Index("uq_phases_subscription_start", subscription_phases.c.subscription_id, subscription_phases.c.start, unique=True)

pending_items = Table(
    "pending_items", metadata,
    Column("id", Id, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("description", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("period_start", Date),
    Column("period_end", Date),
    Column("formula", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("tax_rate", String(10)),  # "8%" for a reduced-rate line; NULL: the catalog's standard rate
    Column("catalog_version", Integer),  # the catalog version that priced it
)
Index("ix_pending_items_customer", pending_items.c.customer_id)

usage_counters = Table(
    "usage_counters", metadata,
    Column("customer_id", ForeignKey("customers.id"), primary_key=True),
    Column("metric", String(40), primary_key=True),
    Column("month", Date, primary_key=True),
    Column("quantity", BigInteger, nullable=False),
)

usage_events = Table(
    "usage_events", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("metric", String(40), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("month", Date, nullable=False),  # the tenant-local calendar month it counts in
    Column("transaction_id", String(200), nullable=False),  # the sender's id: counted once
    Column("recorded_at", UtcDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "transaction_id", name="uq_usage_events_tenant_transaction"),
)
Index("ix_usage_events_customer_month", usage_events.c.customer_id, usage_events.c.metric, usage_events.c.month)

invoices = Table(
    "invoices", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("number", String(40), nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("period_start", Date),
    Column("period_end", Date),
    Column("subtotal", BigInteger, nullable=False),
    Column("tax", BigInteger, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("tax_rate", String(10), nullable=False),
    Column("tax_inclusive", Boolean, nullable=False),
    Column("credit_applied", BigInteger, nullable=False),
    Column("credit_carried", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),  # open → paid | uncollectible | void
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("first_failed_at", UtcDateTime()),
    Column("next_retry_at", UtcDateTime()),
    Column("paid_at", UtcDateTime()),
    Column("billing_key", String(80)),  # what a scheduled invoice bills (plan:2026-06-03); at most once per customer
    Column("due_on", Date),  # bank transfer: pay by this date
    Column("credited", BigInteger, nullable=False, server_default=text("0")),  # refunded or reduced by its credit notes
    # below the gateway's minimum charge: waits, open, for the customer's next card charge
    Column("deferred", Boolean, nullable=False, server_default=text("false")),
    # per tax rate, JSON [{"rate": "10%", "total": …, "tax": …}]; NULL on invoices from before 0014: one rate, tax_rate
    Column("taxes", Text),
    *party_columns(),
    # a sign-up awaiting 3-D Secure: voided, with its subscription, unless paid by this instant
    Column("expires_at", UtcDateTime()),
    UniqueConstraint("tenant_id", "seq", name="uq_invoices_tenant_seq"),
    UniqueConstraint("customer_id", "billing_key", name="uq_invoices_customer_billing_key"),
    UniqueConstraint("tenant_id", "number", name="uq_invoices_tenant_number"),
)
Index("ix_invoices_customer", invoices.c.customer_id, invoices.c.status)
# the console: 電子帳簿保存法's searches by issue date (newest first) and amount; open, overdue and void amounts (partial
# indexes of those invoices only, which a query naming the status as a literal uses)
Index("ix_invoices_tenant_issued", invoices.c.tenant_id, invoices.c.issued_on, invoices.c.id)
Index("ix_invoices_tenant_total", invoices.c.tenant_id, invoices.c.total)
Index("ix_invoices_open", invoices.c.tenant_id, invoices.c.total, invoices.c.credited, invoices.c.first_failed_at,
      invoices.c.due_on, sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'"))
Index("ix_invoices_void", invoices.c.tenant_id, invoices.c.issued_on, invoices.c.total, invoices.c.credit_applied,
      invoices.c.tax, sqlite_where=text("status = 'void'"), postgresql_where=text("status = 'void'"))

invoice_lines = Table(
    "invoice_lines", metadata,
    Column("id", Id, primary_key=True),
    Column("invoice_id", ForeignKey("invoices.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("description", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),  # messages in a month can pass 2^31
    Column("amount", BigInteger, nullable=False),
    Column("period_start", Date),
    Column("period_end", Date),
    Column("formula", Text, nullable=False),
    Column("tax_rate", String(10)),  # "8%" for a reduced-rate line; NULL: the invoice's tax_rate
    Column("catalog_version", Integer),  # the catalog version that priced it (NULL: not a catalog price)
)
Index("ix_invoice_lines_invoice", invoice_lines.c.invoice_id)

payment_attempts = Table(
    "payment_attempts", metadata,
    Column("id", Id, primary_key=True),
    Column("invoice_id", ForeignKey("invoices.id")),  # none for a refused sign-up or upgrade: it issued no invoice
    Column("customer_id", ForeignKey("customers.id")),
    Column("at", UtcDateTime(), nullable=False),
    Column("payment_method", String(200)),
    Column("amount", BigInteger, nullable=False),
    Column("outcome", String(20), nullable=False),  # succeeded | failed
    Column("code", String(60)),
    Column("idempotency_key", String(120), nullable=False),
    Column("reference", String(120)),  # the gateway's payment id, to reconcile later (3-D Secure)
)
Index("ix_payment_attempts_customer", payment_attempts.c.customer_id, payment_attempts.c.id)

payment_intents = Table(
    # A charge kakin means to make, written before the gateway is called and settled after (issue 10 item 3).
    "payment_intents", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("invoice_id", ForeignKey("invoices.id")),  # none until a purchase's invoice is committed
    Column("covers", Text),  # JSON list of other open invoices (small balances) the same payment pays
    Column("purchase", String(60)),  # the command, for a purchase charged before its invoice exists
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("payment_method", String(200), nullable=False),
    Column("gateway_customer", String(120)),
    Column("idempotency_key", String(120), nullable=False, unique=True),
    Column("status", String(12), nullable=False),  # pending | succeeded | failed | unknown | refunding | refunded
    Column("code", String(60)),
    Column("reference", String(120)),
    Column("attempts", Integer, nullable=False, server_default=text("0")),  # calls made to the gateway
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
Index("ix_payment_intents_status", payment_intents.c.status, payment_intents.c.updated_at)
Index("ix_payment_intents_invoice", payment_intents.c.invoice_id, payment_intents.c.customer_id)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id")),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("member", String(40)),  # the customer's member the request acted for (Kakin-Acting-Member), if any
    Column("action", String(80), nullable=False),
    Column("before", Text),
    Column("after", Text),
)
Index("ix_audit_log_tenant", audit_log.c.tenant_id, audit_log.c.id)
Index("ix_audit_log_customer", audit_log.c.customer_id, audit_log.c.id)  # the console's customer timeline, newest first

api_keys = Table(
    "api_keys", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("prefix", String(24), nullable=False, unique=True),  # public part of the key, for lookup
    Column("secret_hash", String(64), nullable=False),  # SHA-256 of the whole key; the key itself is never stored
    Column("role", String(20), nullable=False),  # owner | billing_admin | reviewer | viewer
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),
)

members = Table(
    "members", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("email", String(320), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),  # super_admin | admin | member
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("customer_id", "email", name="uq_members_customer_email"),
)
Index("ix_members_tenant_email", members.c.tenant_id, members.c.email, members.c.customer_id)  # an e-mail fragment
Index(
    "uq_members_one_super_admin", members.c.customer_id, unique=True,
    sqlite_where=text("role = 'super_admin'"), postgresql_where=text("role = 'super_admin'"),
)

domain_verifications = Table(
    "domain_verifications", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("domain", String(253), nullable=False),
    Column("token", String(64), nullable=False),  # published as TXT "kakin-domain-verification=<token>" at the domain
    Column("created_at", UtcDateTime(), nullable=False),
    Column("verified_at", UtcDateTime()),
    Column("verified_domain", String(253)),  # the domain while in use by this customer: one customer per domain
    Column("provided", Boolean, nullable=False, server_default=text("false")),  # the vendor's GROUP.<suffix>
    Column("next_check_at", UtcDateTime()),  # the worker's next TXT look-up while pending (for 24 hours)
    Column("deleted_at", UtcDateTime()),  # a deleted provided domain stays: it is never issued again
    UniqueConstraint("customer_id", "domain", name="uq_domain_verifications_customer_domain"),
    UniqueConstraint("tenant_id", "verified_domain", name="uq_domain_verifications_tenant_verified"),
)

plan_change_jobs = Table(  # a plan change the worker completes (LINE WORKS lite → paid: アップグレード中 until then)
    "plan_change_jobs", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("plan", String(40), nullable=False),
    Column("contract", String(40)),
    Column("seats", Integer),
    Column("status", String(20), nullable=False),  # pending | completed | failed
    Column("actor", String(200), nullable=False),  # who asked (audit), and the acting member
    Column("member", String(40)),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("error_code", String(60)),  # a failed job: the refusal's code
)
Index("ix_plan_change_jobs_status", plan_change_jobs.c.status, plan_change_jobs.c.id)
Index("ix_plan_change_jobs_customer", plan_change_jobs.c.customer_id)

eligibility_applications = Table(
    "eligibility_applications", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("plan", String(40), nullable=False),
    Column("code", String(6), nullable=False),  # the local government, JIS X 0402
    Column("applicant_email", String(320), nullable=False),
    Column("via_agency", Boolean, nullable=False),
    Column("status", String(20), nullable=False),  # pending → approved | refused (refused at once by the automatic checks)
    Column("email_needs_review", Boolean, nullable=False),  # not an lg.jp address
    Column("reasons", Text, nullable=False),  # JSON: why the checks or the reviewer refused; for operators only
    Column("review_due", Date),
    Column("submitted_at", UtcDateTime(), nullable=False),
    Column("decided_at", UtcDateTime()),
    Column("decided_by", String(200)),
)
Index("ix_eligibility_applications_tenant_code", eligibility_applications.c.tenant_id, eligibility_applications.c.code)

idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),  # method, path and body
    Column("status_code", Integer, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "key", name="uq_idempotency_keys_tenant_key"),
)
Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)

webhook_endpoints = Table(
    "webhook_endpoints", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("url", String(2000), nullable=False),
    Column("secret", String(80), nullable=False),  # needed to sign; shown to the operator once
    Column("events", Text, nullable=False),  # JSON list of event types, ["*"] for all
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", UtcDateTime(), nullable=False),
)

webhook_events = Table(
    "webhook_events", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("public_id", String(40), nullable=False, unique=True),
    Column("type", String(80), nullable=False),
    Column("customer_key", String(200)),
    Column("payload", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Id, primary_key=True),
    Column("event_id", ForeignKey("webhook_events.id"), nullable=False),
    Column("endpoint_id", ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("status", String(20), nullable=False),  # pending | sending (claimed) | delivered | failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UtcDateTime()),  # while sending: the end of the claim's lease
    Column("claim", String(32)),  # the token of the worker that claimed it
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("delivered_at", UtcDateTime()),
    UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at)

outbox = Table(
    "outbox", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id")),
    Column("kind", String(60), nullable=False),
    Column("dedupe_key", String(200), nullable=False),  # the same notice is queued once, also when a run is redone
    Column("to_address", String(320), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(20), nullable=False),  # pending | sending (claimed) | sent | failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UtcDateTime()),  # while sending: the end of the claim's lease
    Column("claim", String(32)),  # the token of the worker that claimed it
    Column("last_error", Text),
    Column("sent_at", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("tenant_id", "dedupe_key", name="uq_outbox_tenant_dedupe_key"),
)
Index("ix_outbox_due", outbox.c.status, outbox.c.next_attempt_at)

credit_notes = Table(
    "credit_notes", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("invoice_id", ForeignKey("invoices.id"), nullable=False),  # the invoice it corrects
    Column("seq", Integer, nullable=False),
    Column("number", String(40), nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("amount", BigInteger, nullable=False),  # in the invoice's price basis
    Column("tax", BigInteger, nullable=False),
    Column("total", BigInteger, nullable=False),  # returned, tax included
    Column("reason", Text, nullable=False),
    Column("settlement", String(20), nullable=False),  # refund | credit | reduce (an open invoice)
    Column("refund_reference", String(120)),
    Column("taxes", Text),  # per tax rate, JSON as on invoices; NULL: one rate, the invoice's
    Column("lines", Text),  # JSON [{"description", "quantity", "amount", "formula", "tax_rate"}]; NULL: the reason alone
    *party_columns(),
    UniqueConstraint("tenant_id", "seq", name="uq_credit_notes_tenant_seq"),
)
Index("ix_credit_notes_tenant_issued", credit_notes.c.tenant_id, credit_notes.c.issued_on, credit_notes.c.id)
Index("ix_credit_notes_tenant_total", credit_notes.c.tenant_id, credit_notes.c.total)
Index("ix_credit_notes_customer", credit_notes.c.customer_id)

portal_sessions = Table(
    "portal_sessions", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("member_id", ForeignKey("members.id"), nullable=False),
    Column("link_hash", String(64), nullable=False, unique=True),  # SHA-256 of the one-time link's token
    Column("link_expires_at", UtcDateTime(), nullable=False),
    Column("session_hash", String(64), unique=True),  # SHA-256 of the session cookie, once the link is opened
    Column("locale", String(8), nullable=False),  # ja | en
    Column("return_url", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("opened_at", UtcDateTime()),
    Column("last_seen_at", UtcDateTime()),
    Column("ended_at", UtcDateTime()),  # signed out or revoked
    Index("ix_portal_sessions_customer", "customer_id"),
)

operators = Table(  # the vendor's staff who sign in to the operator console (/console/)
    "operators", metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id"), nullable=False),
    Column("email", String(320), nullable=False, unique=True),  # lower-cased; unique across kakin (the form asks no tenant)
    Column("password_hash", String(200), nullable=False),  # Argon2id, argon2-cffi's encoded form
    Column("role", String(20), nullable=False),  # owner | billing_admin | reviewer | viewer (the API keys' roles)
    Column("failed_attempts", Integer, nullable=False, server_default=text("0")),  # consecutive, reset on success
    Column("locked_until", UtcDateTime()),
    Column("disabled_at", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_sign_in_at", UtcDateTime()),
    Index("ix_operators_tenant_id", "tenant_id"),
)

console_sessions = Table(
    "console_sessions", metadata,
    Column("id", Id, primary_key=True),
    Column("operator_id", ForeignKey("operators.id"), nullable=False),
    Column("session_hash", String(64), nullable=False, unique=True),  # SHA-256 of the cookie's random token
    Column("locale", String(8), nullable=False),  # ja | en
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime()),  # signed out, revoked everywhere, idle too long, or the operator disabled
    Index("ix_console_sessions_operator_id", "operator_id"),
)

# the dashboard's monthly series (services.series): per tenant and series, the sums per day of the rows with an id up
# to ``settled``, saved by the worker so that a process's first dashboard reads only the rows above the mark
dashboard_marks = Table(
    "dashboard_marks", metadata,
    Column("tenant_id", ForeignKey("tenants.id"), primary_key=True),
    Column("series", String(80), primary_key=True),  # "invoices", "credit_notes", "usage_events:<metric>"
    Column("settled", BigInteger, nullable=False),  # the highest row id summed in dashboard_sums
)

dashboard_sums = Table(
    "dashboard_sums", metadata,
    Column("tenant_id", ForeignKey("tenants.id"), primary_key=True),
    Column("series", String(80), primary_key=True),
    Column("day", Date, primary_key=True),  # an issue date (usage: the first day of the month)
    Column("amount", BigInteger, nullable=False),
)

# Objects migration 0027 creates on one database only, which these tables do not declare: the trigram indexes of
# the console's substring searches. PostgreSQL: GIN indexes (gin_trgm_ops) on these columns. SQLite: FTS5 tables
# (tokenizer trigram, external content: index only) over these columns, kept by triggers <table>_insert / _delete /
# _update (a migration that rebuilds customers or members with batch_alter_table must create the triggers again).
TRIGRAM_INDEXES = {"ix_customers_name_trgm": ("customers", "name"),
                   "ix_customers_addressee_trgm": ("customers", "addressee"),
                   "ix_members_email_trgm": ("members", "email")}
TRIGRAM_TABLES = {"customers_text": ("customers", ("name", "addressee")), "members_text": ("members", ("email",))}
FTS5_SHADOWS = ("data", "idx", "docsize", "config")  # the tables SQLite keeps for each FTS5 table


def dialect_only(dialect: str) -> dict[str, set[str]]:
    """The names of the objects of migration 0027 on ``dialect`` ("sqlite", "postgresql"), by kind (``table``,
    ``index``, ``trigger``), shadow tables of FTS5 included."""
    if dialect == "postgresql":
        return {"table": set(), "index": set(TRIGRAM_INDEXES), "trigger": set()}
    if dialect == "sqlite":
        return {"table": {name + suffix for name in TRIGRAM_TABLES for suffix in ("", *(f"_{s}" for s in FTS5_SHADOWS))},
                "index": set(), "trigger": {f"{name}_{what}" for name in TRIGRAM_TABLES
                                             for what in ("insert", "delete", "update")}}
    return {"table": set(), "index": set(), "trigger": set()}
