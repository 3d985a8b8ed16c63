"""Request bodies: unknown fields and wrong types are refused (422) with the field named."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field


def _integral(value: object) -> object:
    """JSON Schema counts 12.0 as an integer; strict mode alone would refuse it. Anything else is left to strict mode
    (so "12", true and 12.5 stay refused)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Whitespace and control characters spelled out: `\s` means different sets in JSON Schema (ECMA-262), in Python and
# in pydantic's Rust engine (U+0085, U+FEFF), so the documented pattern and the enforced one would disagree.
_NOT_AT_OR_SPACE = r"[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"

# Free text is any text but NUL: PostgreSQL cannot store U+0000 in a text column (psycopg refuses it, a 500).
NO_NUL = r"^[^\x00]*$"

Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$")]
# An integer as JSON Schema has it (12.0 included) in an otherwise strict model: Annotated[int, Field(ge=…), INTEGRAL].
# Keep it after the Field: before it, pydantic writes the bounds into the JSON Schema as "ge"/"le", which no client
# or validator reads, instead of minimum/maximum.
INTEGRAL = BeforeValidator(_integral)
Count = Annotated[int, Field(ge=0, le=1_000_000), INTEGRAL]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
Email = Annotated[str, Field(min_length=3, max_length=320, pattern=rf"^{_NOT_AT_OR_SPACE}+@{_NOT_AT_OR_SPACE}+$")]
Token = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]

# An RFC 3339 date-time with an offset, in the years 2000–2199 as written. Only strings: lax datetime parsing would
# also take 1700000000 or "1700000000" as a Unix time, which the schema (type string) does not admit.
INSTANT_PATTERN = (r"^2[01][0-9]{2}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                   r"([Zz]|[+-][0-9]{2}:[0-9]{2})$")
_INSTANT = re.compile(INSTANT_PATTERN)


def _instant(value: object) -> object:
    if not isinstance(value, str) or not _INSTANT.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset in the years 2000–2199, "
                         "such as 2026-05-01T00:00:00+09:00")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_instant),
                    Field(strict=False, json_schema_extra={"pattern": INSTANT_PATTERN})]

# http(s), then a host of plain ASCII URL characters: what urlsplit takes without complaint and the webhook service
# accepts. (Brackets or non-ASCII in the host made urlsplit raise ValueError, a 500.)
WEBHOOK_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~%!$&'()*+,;=:@-]+([/?#][^\x00\t\n\r]*)?$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SuperAdminIn(Body):
    email: Email
    name: Name


class CustomerIn(Body):
    id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")] | None = None
    name: Name
    super_admin: SuperAdminIn
    payment_method: Token | None = None
    users: Count = 0
    test_clock: Annotated[str, Field(max_length=40, pattern=NO_NUL)] | None = None
    # members sign in as id@group (LINE WORKS without a domain): some plan changes then need a verified domain
    sign_in_group: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")] | None = None


class EligibilityApplicationIn(Body):
    plan: Code
    local_government_code: Annotated[str, Field(pattern=r"^[0-9]{6}$")]  # JIS X 0402, with its check digit
    applicant_email: Email
    via_agency: bool = False


class AccountNameIn(Body):
    name: Annotated[str, Field(min_length=1, max_length=300, pattern=NO_NUL)]


class RefusalIn(Body):
    reason: Annotated[str, Field(min_length=1, max_length=2000, pattern=NO_NUL)]


class DomainIn(Body):
    domain: Annotated[str | None, Field(min_length=3, max_length=253, pattern=NO_NUL,
                                        description="your own domain; omit it with provided")] = None
    provided: bool = Field(False, description="add the vendor's domain GROUP.<provided_suffix> instead (in use at once)")


class MemberIn(Body):
    email: Email
    name: Name
    role: Literal["admin", "member"] = "member"


class SubscribeIn(Body):
    plan: Code
    contract: Code | None = None
    seats: Count | None = None
    users: Count | None = None
    trial_days: Annotated[int, Field(ge=0, le=365), INTEGRAL] | None = None


class SeatsIn(Body):
    seats: Count


class UsersIn(Body):
    users: Count


class PlanChangeIn(Body):
    plan: Code
    contract: Code | None = None
    seats: Count | None = None


class PaymentMethodIn(Body):
    payment_method: Token


class ConsumeIn(Body):
    count: Annotated[int, Field(ge=1, le=10_000_000), INTEGRAL]


class PremiumIdIn(Body):
    premium_id: Annotated[str, Field(max_length=40, pattern=NO_NUL)]
    billing: Literal["monthly", "annual"] = "monthly"


class WebhookEndpointIn(Body):
    url: Annotated[str, Field(min_length=8, max_length=2000, pattern=WEBHOOK_URL_PATTERN)]
    events: Annotated[list[Annotated[str, Field(max_length=80, pattern=NO_NUL)]], Field(max_length=50)] = []


class TestClockIn(Body):
    name: Name = "test clock"
    frozen_time: Instant


class AdvanceIn(Body):
    frozen_time: Instant


class TenantIn(Body):
    """A change of the vendor: the fields given are set, the others stay."""

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)] | None = None
    registration_number: Annotated[str, Field(max_length=14, pattern=NO_NUL)] | None = None
    address: Annotated[str, Field(max_length=500, pattern=NO_NUL)] | None = None


class CatalogVersionIn(Body):
    """A catalog file's TOML text published as the tenant's next catalog version (owner only)."""

    content: Annotated[str, Field(min_length=1, max_length=1_000_000, pattern=NO_NUL)]
    effective: Instant  # new subscriptions take it from this instant
    existing: Literal["next_period", "never"]  # existing subscriptions move at their next period, or keep their version
    source: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)] = "api"  # a name for the file
    dry_run: bool = False  # show the changes and the subscribers affected; publish nothing
