"""The repositories of a unit of work, each bound to its connection: ``uow.domains``, ``uow.members``, …

Services speak to these and to the account store's own methods (``store.UnitOfWork``), never to the connection,
SQLAlchemy or the tables (``tests/unit/test_layers.py``). A repository holds nothing but the connection, so a
property makes one each time it is read.
"""

from __future__ import annotations

from sqlalchemy import Connection

from .catalog_repo import CatalogVersionRepository
from .domain_store import DomainRepository, PlanChangeJobRepository
from .intents_repo import PaymentIntentRepository
from .invoices_repo import InvoiceRecordRepository
from .operator_store import ConsoleReadRepository, OperatorRepository
from .outboxes import OutboxRepository
from .portal_store import PortalSessionRepository
from .reports_repo import ReportRepository
from .service_store import (
    ApiKeyRepository,
    ApplicationRepository,
    CustomerRecordRepository,
    IdempotencyRepository,
    ListingRepository,
    MemberRepository,
    TestClockRepository,
    WebhookRepository,
)
from .usage_repo import UsageRepository


class Repositories:
    """Mixed into :class:`~kakin.adapters.db.store.UnitOfWork`: its repositories, on its connection."""

    conn: Connection

    @property
    def domains(self) -> DomainRepository:
        """Customers' domains (``domain_store``)."""
        return DomainRepository(self.conn)

    @property
    def plan_change_jobs(self) -> PlanChangeJobRepository:
        """Plan changes the worker completes (``domain_store``)."""
        return PlanChangeJobRepository(self.conn)

    @property
    def operators(self) -> OperatorRepository:
        """Operators of the console and their sessions (``operator_store``)."""
        return OperatorRepository(self.conn)

    @property
    def console_reads(self) -> ConsoleReadRepository:
        """What the console reads beyond the API's queries (``operator_store``)."""
        return ConsoleReadRepository(self.conn)

    @property
    def catalog_versions(self) -> CatalogVersionRepository:
        """A tenant's catalog versions as stored (``catalog_repo``)."""
        return CatalogVersionRepository(self.conn)

    @property
    def portal_sessions(self) -> PortalSessionRepository:
        """The customer portal's links and sessions (``portal_store``)."""
        return PortalSessionRepository(self.conn)

    @property
    def invoice_records(self) -> InvoiceRecordRepository:
        """Finalized invoices and credit notes as operators' commands read them (``invoices_repo``)."""
        return InvoiceRecordRepository(self.conn)

    @property
    def outboxes(self) -> OutboxRepository:
        """The mail and webhook outboxes (``outboxes``)."""
        return OutboxRepository(self.conn)

    @property
    def usage(self) -> UsageRepository:
        """Usage counters and events (``usage_repo``)."""
        return UsageRepository(self.conn)

    @property
    def api_keys(self) -> ApiKeyRepository:
        """The tenants' API keys (``service_store``)."""
        return ApiKeyRepository(self.conn)

    @property
    def members(self) -> MemberRepository:
        """Customers' members (``service_store``)."""
        return MemberRepository(self.conn)

    @property
    def idempotency(self) -> IdempotencyRepository:
        """Responses recorded by ``Idempotency-Key`` (``service_store``)."""
        return IdempotencyRepository(self.conn)

    @property
    def applications(self) -> ApplicationRepository:
        """Eligibility applications (``service_store``)."""
        return ApplicationRepository(self.conn)

    @property
    def webhooks(self) -> WebhookRepository:
        """Webhook endpoints, events and deliveries (``service_store``)."""
        return WebhookRepository(self.conn)

    @property
    def test_clocks(self) -> TestClockRepository:
        """Test clocks (``service_store``)."""
        return TestClockRepository(self.conn)

    @property
    def customer_records(self) -> CustomerRecordRepository:
        """What services write on customers beyond the account store; where notices go (``service_store``)."""
        return CustomerRecordRepository(self.conn)

    @property
    def listing(self) -> ListingRepository:
        """Pages of a tenant's rows for cursor pagination (``service_store``)."""
        return ListingRepository(self.conn)

    @property
    def intents(self) -> PaymentIntentRepository:
        """Payment intents (``intents_repo``)."""
        return PaymentIntentRepository(self.conn)

    @property
    def reports(self) -> ReportRepository:
        """The console's reads: dashboard figures, searches, documents (``reports_repo``)."""
        return ReportRepository(self.conn)
