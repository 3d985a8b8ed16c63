"""Errors a user can cause. Each class has a stable ``code``, a ``kind`` and names the offending field.

The ``kind`` says what sort of refusal an error is, in words that do not
belong to any one interface: the API turns it into an HTTP status
(``api/errors.py``), the command line into exit status 2. A code is declared
once, on its class; code and kind are never chosen at the raise site, so the
list of codes is the list of classes (the README's table is checked against it).
"""

from __future__ import annotations

# What sort of refusal an error is. The API maps each kind to one HTTP status.
INVALID = "invalid"                    # the request itself is wrong: fix the field named in param
CONFLICT = "conflict"                  # refused by a billing rule or by the current state
NOT_FOUND = "not_found"                # no such thing (for this tenant)
FORBIDDEN = "forbidden"                # the key or the acting member may not do this
UNAUTHENTICATED = "unauthenticated"    # no valid API key
PAYMENT_REQUIRED = "payment_required"  # a payment method is missing or was refused
UNAVAILABLE = "unavailable"            # a service kakin depends on did not answer; nothing changed, try again
KINDS = (INVALID, CONFLICT, NOT_FOUND, FORBIDDEN, UNAUTHENTICATED, PAYMENT_REQUIRED, UNAVAILABLE)


class KakinError(Exception):
    """A refusal the caller can act on: ``code`` (stable), ``message`` (what to do), ``param`` (the field)."""

    code = "kakin_error"
    kind = INVALID

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def details(self) -> dict[str, object]:
        """Fields an error adds beside code, message and param (``remaining`` of a quota, …); none by default."""
        return {}

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "param": self.param, **self.details()}


def every_error_class() -> list[type[KakinError]]:
    """KakinError and all its subclasses, each once, in definition order of the hierarchy."""
    found: list[type[KakinError]] = []
    todo: list[type[KakinError]] = [KakinError]
    while todo:
        cls = todo.pop(0)
        if cls not in found:
            found.append(cls)
            todo.extend(cls.__subclasses__())
    return found


# ------------------------------------------------------------------ invalid requests (the field is in param)
class InvalidValue(KakinError):
    code = "invalid_value"


class CatalogError(KakinError):
    """A catalog file is malformed. The message names the file, the key and the reason."""

    code = "catalog_invalid"

    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}", param=key)
        self.file = file
        self.key = key
        self.reason = reason


class SeatsOutOfRange(KakinError):
    code = "seats_out_of_range"


class SeatsNotApplicable(InvalidValue):
    code = "seats_not_applicable"


class UnknownPlan(KakinError):
    code = "unknown_plan"


class UnknownContract(InvalidValue):
    code = "unknown_contract"


class UnknownMetric(InvalidValue):
    code = "unknown_metric"


class UnknownAddon(InvalidValue):
    code = "unknown_addon"


class InvalidPremiumId(KakinError):
    code = "invalid_premium_id"


class InvalidRegistrationNumber(InvalidValue):
    code = "invalid_registration_number"


class InvalidPostalCode(InvalidValue):
    code = "invalid_postal_code"


class InvalidCursor(InvalidValue):
    code = "invalid_cursor"


class InvalidSignature(InvalidValue):
    code = "invalid_signature"


class PaymentMethodUnknown(InvalidValue):
    code = "payment_method_unknown"


class PaymentMethodRefused(KakinError):
    """The gateway refused a payment method for a reason other than a card decline (already used elsewhere, …)."""

    code = "payment_method_refused"


class TimestampInFuture(InvalidValue):
    code = "timestamp_in_future"


class PeriodClosed(InvalidValue):
    code = "period_closed"


class CreditExceedsInvoice(InvalidValue):
    code = "credit_exceeds_invoice"


# ------------------------------------------------------------------ refused by a rule or the current state
class Conflict(KakinError):
    code = "conflict"
    kind = CONFLICT


class PlanChangeNotAllowed(Conflict):
    code = "plan_change_not_allowed"


class QuotaExceeded(Conflict):
    code = "quota_exceeded"

    def __init__(self, message: str, *, remaining: int, param: str | None = "count") -> None:
        super().__init__(message, param=param)
        self.remaining = remaining

    def details(self) -> dict[str, object]:
        return {"remaining": self.remaining}


class NotSubscribed(Conflict):
    code = "not_subscribed"


class AlreadySubscribed(Conflict):
    code = "already_subscribed"


class PremiumIdTaken(Conflict):
    code = "premium_id_taken"


class PremiumIdLocked(Conflict):
    code = "premium_id_locked"


class AccountNameLocked(Conflict):
    """LINE OA: verification or the local-government plan was applied for; the account name and premium ID are fixed."""

    code = "account_name_locked"


class AdminLimitReached(Conflict):
    code = "admin_limit_reached"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class DomainVerificationRequired(Conflict):
    code = "domain_verification_required"


class DomainNotVerified(Conflict):
    code = "domain_not_verified"


class DomainTaken(Conflict):
    code = "domain_taken"


class PrimaryDomainLocked(Conflict):
    """The primary domain changed less than 24 hours ago (seed lineworks-upgrade-procedure)."""

    code = "primary_domain_locked"


class DomainIsPrimary(Conflict):
    """The primary domain cannot be deleted; another one must be made primary first."""

    code = "domain_is_primary"


class UpgradeInProgress(Conflict):
    """A plan change the worker completes (アップグレード中) is pending; the customer waits for it."""

    code = "upgrade_in_progress"


class CustomerDeleted(Conflict):
    code = "customer_deleted"


class CustomerExists(Conflict):
    code = "customer_exists"


class TenantExists(Conflict):
    code = "tenant_exists"


class MemberExists(Conflict):
    code = "member_exists"


class SuperAdminExists(Conflict):
    code = "super_admin_exists"


class ApplicationPending(Conflict):
    code = "application_pending"


class AlreadyGranted(Conflict):
    code = "already_granted"


class ApplicationDecided(Conflict):
    code = "application_decided"


class InvoiceNotOpen(Conflict):
    code = "invoice_not_open"


class CollectedByBankTransfer(Conflict):
    """A card action (retry now) on an invoice of a customer who pays by bank transfer."""

    code = "collected_by_bank_transfer"


class InvoiceNotPaid(Conflict):
    code = "invoice_not_paid"


class RefundFailed(Conflict):
    code = "refund_failed"


class OperatorExists(Conflict):
    code = "operator_exists"


class AddonHasSubscribers(Conflict):
    """A catalog version would drop an add-on (or one of its billings) that live add-on subscriptions renew on."""

    code = "addon_has_subscribers"

    def __init__(self, message: str, *, addons: dict[str, int], param: str | None = "addons") -> None:
        super().__init__(message, param=param)
        self.addons = addons

    def details(self) -> dict[str, object]:
        return {"addons": self.addons}


class PlanHasSubscribers(Conflict):
    """A catalog version would drop plans that still have subscribers and does not move them (``[plan_moves]``)."""

    code = "plan_has_subscribers"

    def __init__(self, message: str, *, plans: dict[str, int], param: str | None = "plan_moves") -> None:
        super().__init__(message, param=param)
        self.plans = plans

    def details(self) -> dict[str, object]:
        return {"plans": self.plans}


# ------------------------------------------------------------------ who may do what
class NotFound(KakinError):
    code = "not_found"
    kind = NOT_FOUND


class Unauthenticated(KakinError):
    code = "invalid_api_key"
    kind = UNAUTHENTICATED


class RoleForbidden(KakinError):
    code = "role_forbidden"
    kind = FORBIDDEN


class SuperAdminRequired(KakinError):
    code = "super_admin_required"
    kind = FORBIDDEN


class AdminRequired(KakinError):
    code = "admin_required"
    kind = FORBIDDEN


class EligibilityRequired(KakinError):
    code = "eligibility_required"
    kind = FORBIDDEN


# ------------------------------------------------------------------ payments and services
class PaymentMethodRequired(KakinError):
    code = "payment_method_required"
    kind = PAYMENT_REQUIRED


class CardDeclined(KakinError):
    """The card was declined when the command charged it at once (a sign-up, an upgrade, more seats, an add-on):
    the command is refused whole and changes nothing. ``decline_code`` is the gateway's reason
    (``insufficient_funds``, ``expired_card``, ``generic_decline``, …). Source: SPEC 3.2 (a sign-up whose first
    charge is declined is refused), issue 9 item 6."""

    code = "card_declined"
    kind = PAYMENT_REQUIRED

    def __init__(self, message: str, *, decline_code: str, param: str | None = "payment_method") -> None:
        super().__init__(message, param=param)
        self.decline_code = decline_code

    def details(self) -> dict[str, object]:
        return {"decline_code": self.decline_code}


class DnsUnavailable(KakinError):
    code = "dns_unavailable"
    kind = UNAVAILABLE


class FontsMissing(KakinError):
    """No font for Japanese is installed: a PDF would show empty boxes, so none is rendered."""

    code = "fonts_missing"
    kind = UNAVAILABLE


class PaymentGatewayUnavailable(KakinError):
    """The payment gateway did not answer a charge (a timeout, a network failure): the command changed nothing.
    Sending it again is safe: the charge is retried with the same idempotency key, so a card is never charged twice.
    Source: issue 10 item 3."""

    code = "payment_gateway_unavailable"
    kind = UNAVAILABLE


class DatabaseBusy(KakinError):
    """The customer's records stayed locked by other work longer than kakin waits for a lock (PostgreSQL's
    ``lock_timeout``, SQLite's busy timeout), or a deadlock repeated past kakin's retries: nothing was changed;
    send the request again. Source: issue 10 (a lock wait is bounded and answered, never a hang or a 500)."""

    code = "database_busy"
    kind = UNAVAILABLE


class DatabaseUnavailable(KakinError):
    """The database could not be reached (stopped, restarting, the network down) or dropped the connection during
    the request: nothing was committed; send the request again once it is back. Source: issue 10 (never a 500)."""

    code = "database_unavailable"
    kind = UNAVAILABLE
