"""Errors a user can cause. Each has a stable ``code`` and names the offending field."""

from __future__ import annotations


class KakinError(Exception):
    """A refusal the caller can act on. Maps to HTTP 4xx and CLI exit status 2."""

    code = "kakin_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "param": self.param}


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


class PlanChangeNotAllowed(KakinError):
    code = "plan_change_not_allowed"


class PaymentMethodRequired(KakinError):
    code = "payment_method_required"


class CardDeclined(KakinError):
    """The card was declined when the command charged it at once (a sign-up, an upgrade, more seats, an add-on):
    the command is refused whole and changes nothing. ``decline_code`` is the gateway's reason
    (``insufficient_funds``, ``expired_card``, ``generic_decline``, …). Source: SPEC 3.2 (a sign-up whose first
    charge is declined is refused), issue 9 item 6."""

    code = "card_declined"

    def __init__(self, message: str, *, decline_code: str, param: str | None = "payment_method") -> None:
        super().__init__(message, param=param)
        self.decline_code = decline_code


class QuotaExceeded(KakinError):
    code = "quota_exceeded"

    def __init__(self, message: str, *, remaining: int, param: str | None = "count") -> None:
        super().__init__(message, param=param)
        self.remaining = remaining


class UnknownPlan(KakinError):
    code = "unknown_plan"


class NotSubscribed(KakinError):
    code = "not_subscribed"


class AlreadySubscribed(KakinError):
    code = "already_subscribed"


class InvalidPremiumId(KakinError):
    code = "invalid_premium_id"


class PremiumIdTaken(KakinError):
    code = "premium_id_taken"


class PremiumIdLocked(KakinError):
    code = "premium_id_locked"


class EligibilityRequired(KakinError):
    code = "eligibility_required"


class InvalidValue(KakinError):
    code = "invalid_value"


class NotFound(KakinError):
    code = "not_found"


class Unauthenticated(KakinError):
    code = "invalid_api_key"


class RoleForbidden(KakinError):
    code = "role_forbidden"


class SuperAdminRequired(KakinError):
    code = "super_admin_required"


class AdminRequired(KakinError):
    code = "admin_required"


class AdminLimitReached(KakinError):
    code = "admin_limit_reached"


class IdempotencyKeyReused(KakinError):
    code = "idempotency_key_reused"


class DomainVerificationRequired(KakinError):
    code = "domain_verification_required"


class DomainNotVerified(KakinError):
    code = "domain_not_verified"


class DomainTaken(KakinError):
    code = "domain_taken"


class DnsUnavailable(KakinError):
    code = "dns_unavailable"


class CustomerDeleted(KakinError):
    code = "customer_deleted"


class Conflict(KakinError):
    code = "conflict"
