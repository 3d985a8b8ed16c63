"""Schemathesis against the API's own /openapi.json, in process (ASGI, no network), on a fresh SQLite database.

Every operation the schema documents is called with generated requests, valid and invalid (Schemathesis' positive
and negative modes), as a tenant owner of each reference vendor (nipoplus, lineworks, line-oa, made by
``ensure_reference_tenants``), and again with no or a wrong API key. Whatever the input:

- no 5xx (``not_a_server_error``; an exception in the app is re-raised by the in-process client, with its traceback);
- the status code is one the operation documents, and the body, content type and headers match what is documented
  for it (``status_code_conformance``, ``response_schema_conformance``, ``content_type_conformance``,
  ``response_headers_conformance``);
- a request the schema calls invalid is refused with a 4xx (``negative_data_rejection``);
- a request the schema calls valid is not refused as malformed: a 422 ``invalid_request``/``invalid_json`` answer to
  it means the enforced request schema is stricter than the documented one (``documented_request_schema_is_enforced``
  below). Refusals by business rules (unknown plan, a cursor the API did not issue, seats out of range…) are answers
  the schema cannot predict and stay allowed;
- a method the path does not serve gets 405 with an ``Allow`` header listing exactly the documented methods
  (``unsupported_method``, ``allow_header_conformance``);
- without a valid key, every operation that documents the API key as its security answers 401 with the documented
  error body (the others, a payment gateway's webhook say, only have to conform);
- the published schema spells every bound as JSON Schema does (``maximum``, not pydantic's ``le``), or the bound is
  lost on its readers, Schemathesis included.

Random customer ids would only ever reach the 404 branch, so most valid requests are redirected to the tenant's real
customers, invoices, test clock and webhook endpoint, acting as the customer's super admin (``Kakin-Acting-Member``)
or as nobody, sometimes with one of two ``Idempotency-Key`` values per operation so replays and key reuse happen too.
The run is derandomized: the same 20 examples per operation on every run (``KAKIN_FUZZ_EXAMPLES=N`` for a longer,
random hunt).

Bugs found and not fixed yet are listed in KNOWN_BUGS: the fuzz run forgives exactly that symptom (one operation,
one parameter, one message) and ``test_known_bug`` replays the exact request without forgiving anything, marked
xfail(strict=True) with the bug as reason. Fixing the bug turns it into an XPASS, a failure: delete the entry then.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.serve import ensure_reference_tenants

# The schema is read once, at collection, from an app with no database behind it: serving /openapi.json needs none.
# Every request goes to the app of the `api` fixture instead (passed as `app=`). The Authorization header is the
# test's to set (a key of a real tenant, or a bad one), not Schemathesis' to generate.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(make_engine("sqlite://")),
    config=schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}}),
)

# KAKIN_FUZZ_EXAMPLES=N makes a longer, random hunt (N examples per operation, new ones on every run).
HUNT = os.environ.get("KAKIN_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(HUNT or 20),
    deadline=None,
    derandomize=not HUNT,  # by default the same examples on every run: a red build names a real change
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class KnownBug:
    reason: str  # the bug, for the xfail marker and the report
    param: str | None  # regex for the `param` of the 422 it causes, which the fuzz run forgives; None: forgive nothing
    message: str  # text in that 422's message
    tenant: str  # the exact request that shows it
    path_parameters: dict[str, str]
    body: Any = None
    query: dict[str, str] | None = None
    # what the replay raises: a check's failure, or the app's own exception, which the in-process client re-raises
    raises: type[BaseException] = FailureGroup


# Bugs the fuzz run found are fixed; a new one goes here (see the module docstring) until it is.
KNOWN_BUGS: dict[str, KnownBug] = {}


def _malformed(response: Any) -> dict[str, Any] | None:
    """The error of a 422 that says the request itself is malformed (not a business-rule refusal), else None."""
    if response.status_code != 422:
        return None
    error = response.json().get("error") or {}
    return error if error.get("code") in ("invalid_request", "invalid_json") else None


def documented_request_schema_is_enforced(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """A request valid by the documented schema must not be refused as malformed. Cases built by hand count as
    valid; generated ones when Schemathesis generated them as valid."""
    if case.meta is not None and not case.meta.generation.mode.is_positive:
        return
    error = _malformed(response)
    assert error is None, f"a request valid by the documented schema was refused as malformed: {response.text}"


def documented_request_schema_is_enforced_but_for_known_bugs(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    bug = KNOWN_BUGS.get(case.operation.label)
    error = _malformed(response)
    if (bug and bug.param is not None and error and re.fullmatch(bug.param, error.get("param") or "")
            and bug.message in error.get("message", "")):
        return
    documented_request_schema_is_enforced(ctx, response, case)


CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
               response_headers_conformance]
CHECKS = [*CONFORMANCE, negative_data_rejection, unsupported_method, allow_header_conformance,
          documented_request_schema_is_enforced]
FUZZ_CHECKS = [*CHECKS[:-1], documented_request_schema_is_enforced_but_for_known_bugs]


@dataclass
class Tenant:
    code: str
    key: str
    known: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> ids that exist
    super_admin: dict[str, str] = field(default_factory=dict)  # customer id -> its super admin's member id


@dataclass
class Api:
    app: FastAPI
    tenants: dict[str, Tenant]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A fresh SQLite file database with the reference tenants, and a few things that exist for each of them."""
    path: Path = tmp_path_factory.mktemp("fuzz") / "kakin.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    gateway = CardSimulator()
    keys = ensure_reference_tenants(engine, gateway, datetime.now(UTC))
    app = create_app(engine, gateway)
    tenants = {}
    with TestClient(app) as client:
        for code, key in keys:
            auth = {"Authorization": f"Bearer {key}"}
            tenant = Tenant(code, key, known={"tenant_code": [code]})
            customers = client.get("/v1/customers", headers=auth).json()["data"]
            tenant.known["customer_id"] = [c["id"] for c in customers]
            for c in customers:
                members = client.get(f"/v1/customers/{c['id']}/members", headers=auth).json()["data"]
                tenant.super_admin[c["id"]] = next(m["id"] for m in members if m["role"] == "super_admin")
            tenant.known["number"] = [i["number"] for i in client.get("/v1/invoices", headers=auth).json()["data"]]
            clock = client.post("/v1/test_clocks", headers=auth,
                                json={"name": "fuzz", "frozen_time": "2026-05-01T00:00:00+09:00"})
            endpoint = client.post("/v1/webhook_endpoints", headers=auth, json={"url": "http://127.0.0.1:9/hook"})
            assert clock.status_code == endpoint.status_code == 201, (clock.text, endpoint.text)
            tenant.known["clock_id"] = [clock.json()["id"]]
            tenant.known["endpoint_id"] = [endpoint.json()["id"]]
            tenants[code] = tenant
    assert list(tenants) == ["nipoplus", "lineworks", "line-oa"]
    assert all(t.known["customer_id"] for t in tenants.values()) and tenants["nipoplus"].known["number"]
    yield Api(app, tenants)
    engine.dispose()


def aim(case: schemathesis.Case, data: st.DataObject, api: Api) -> dict[str, str]:
    """Pick a tenant; point a valid request at things that exist; return the headers to send."""
    tenant = data.draw(st.sampled_from(list(api.tenants.values())), label="tenant")
    headers = {"Authorization": f"Bearer {tenant.key}"}
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return headers  # an invalid request stays exactly as generated, so the negative checks judge it
    for name, value in list((case.path_parameters or {}).items()):
        choices = tenant.known.get(name, [])
        if choices:
            case.path_parameters[name] = data.draw(st.sampled_from([value, *choices]), label=name)
    customer = (case.path_parameters or {}).get("customer_id")
    if customer in tenant.super_admin and data.draw(st.integers(0, 3), label="act") > 0:
        headers["Kakin-Acting-Member"] = tenant.super_admin[customer]
    if case.method == "POST":
        # now and then one of two keys of this operation: a repeat is replayed, the same key with another body is a 409
        n = data.draw(st.integers(0, 7), label="Idempotency-Key")
        if n < 2:
            headers["Idempotency-Key"] = f"fuzz-{n}-{case.operation.label}"
    return headers


@schema.parametrize()
@schema.given(data=st.data())
@FUZZ
def test_every_operation_answers_within_its_documented_schema(case: schemathesis.Case, data: st.DataObject,
                                                             api: Api) -> None:
    case.call_and_validate(app=api.app, headers=aim(case, data, api), checks=FUZZ_CHECKS)


BAD_AUTHORIZATION = [None, "Bearer kk_not_a_key", "Bearer ", "Basic a2FraW46a2FraW4=", "kk_missing_scheme"]


@schema.parametrize()
@schema.given(data=st.data())
@FUZZ
def test_every_operation_refuses_a_missing_or_wrong_key_with_a_documented_401(case: schemathesis.Case,
                                                                              data: st.DataObject, api: Api) -> None:
    authorization = data.draw(st.sampled_from(BAD_AUTHORIZATION), label="Authorization")
    if case.headers:
        case.headers.pop("Authorization", None)  # a CaseInsensitiveDict: any spelling
    headers = {"Authorization": authorization} if authorization is not None else None
    response = case.call_and_validate(app=api.app, headers=headers, checks=CONFORMANCE)
    if not case.operation.definition.raw.get("security"):
        return  # an operation that documents no API key (a gateway's webhook, signed its own way): conformance only
    error = response.json()["error"]
    # FastAPI decodes a JSON body before it runs any dependency, so a body that is not JSON at all is refused as such
    # before the key is looked at; everything else must stop at the key.
    if response.status_code == 422 and error["code"] == "invalid_json":
        return
    assert (response.status_code, error["code"]) == (401, "invalid_api_key"), response.text


JSON_SCHEMA_SPELLINGS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum",
                         "min_length": "minLength", "max_length": "maxLength", "multiple_of": "multipleOf"}


def test_the_published_schema_spells_constraints_as_json_schema_does() -> None:
    """pydantic writes a bound it cannot translate (a validator placed before the Field, say) under its own name:
    "le" instead of "maximum". Nothing reads that, so the bound silently vanishes from the documentation and from
    what Schemathesis generates and checks."""
    found = []

    def walk(node: Any, where: str, in_properties: bool = False) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not in_properties and key in JSON_SCHEMA_SPELLINGS:
                    found.append(f"{where}/{key} (should be {JSON_SCHEMA_SPELLINGS[key]})")
                walk(value, f"{where}/{key}", in_properties=key == "properties" and not in_properties)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(schema.raw_schema, "")
    assert found == []


if KNOWN_BUGS:  # parametrized over no bugs, pytest would report a skipped test
    @pytest.mark.parametrize("label", [
        pytest.param(label, marks=pytest.mark.xfail(strict=True, raises=bug.raises, reason=bug.reason), id=label)
        for label, bug in KNOWN_BUGS.items()])
    def test_known_bug(label: str, api: Api) -> None:
        """The request that shows a known bug, judged by every check with nothing forgiven."""
        bug = KNOWN_BUGS[label]
        method, path = label.split(" ", 1)
        case = schema[path][method].Case(path_parameters=bug.path_parameters, query=bug.query,
                                         **({"body": bug.body, "media_type": "application/json"} if bug.body is not None
                                            else {}))
        case.call_and_validate(app=api.app, headers={"Authorization": f"Bearer {api.tenants[bug.tenant].key}"},
                               checks=CHECKS)
