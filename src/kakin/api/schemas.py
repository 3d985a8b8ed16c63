"""Request bodies: unknown fields and wrong types are refused (422) with the field named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$")]
Count = Annotated[int, Field(ge=0, le=1_000_000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Token = Annotated[str, Field(min_length=1, max_length=200)]


def _in_range(value: datetime) -> datetime:
    if not datetime(2000, 1, 1, tzinfo=UTC) <= value <= datetime(2200, 1, 1, tzinfo=UTC):
        raise ValueError("must be between 2000 and 2200")
    return value


Instant = Annotated[AwareDatetime, Field(strict=False), AfterValidator(_in_range)]


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
    test_clock: Annotated[str, Field(max_length=40)] | None = None


class MemberIn(Body):
    email: Email
    name: Name
    role: Literal["admin", "member"] = "member"


class SubscribeIn(Body):
    plan: Code
    contract: Code | None = None
    seats: Count | None = None
    users: Count | None = None
    trial_days: Annotated[int, Field(ge=0, le=365)] | None = None


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
    count: Annotated[int, Field(ge=1, le=10_000_000)]


class PremiumIdIn(Body):
    premium_id: Annotated[str, Field(max_length=40)]
    billing: Literal["monthly", "annual"] = "monthly"


class WebhookEndpointIn(Body):
    url: Annotated[str, Field(min_length=8, max_length=2000)]
    events: Annotated[list[Annotated[str, Field(max_length=80)]], Field(max_length=50)] = []


class TestClockIn(Body):
    name: Name = "test clock"
    frozen_time: Instant


class AdvanceIn(Body):
    frozen_time: Instant
