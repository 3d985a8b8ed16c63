"""Random scenarios for each reference vendor, run through `kakin simulate`'s engine, checked against invariants.

Hypothesis writes sequences of commands (subscribe, seats, members, plan changes, cancellations, payment methods,
messages, premium IDs, with values in and out of bounds) over a year and a half, and checks what any billing
must satisfy whatever the customers do:

- every refusal is one of kakin's errors with a code: nothing else escapes;
- invoice numbers are gapless, totals and tax are never negative, and an invoice's lines (its sales) with their tax,
  less the credit applied, add up to its total; every line prints the formula that gave its amount;
- no period of a recurring charge is billed twice;
- credits are credit notes, never invoice lines, and credit is conserved: an invoice never applies more credit than
  the credit notes issued so far, and applies less than its total only when all earlier credit is used up;
- the same scenario run twice gives the same result.

It is a net for crashes and broken bookkeeping; the amounts the rules give are pinned by the scenario files and the
unit tests. The examples are derived from the test's name (``derandomize``), so CI runs the same 20 per vendor every
time; ``KAKIN_RANDOM_SCENARIOS=300`` runs more (300 per vendor took about 3 minutes on two cores, all passing).
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kakin.simulator import Scenario, run_scenario

JST = ZoneInfo("Asia/Tokyo")
EXAMPLES = int(os.environ.get("KAKIN_RANDOM_SCENARIOS", "20"))
RANDOM = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
CARDS = ["pm_card_visa", "pm_card_visa", "pm_card_visa", "pm_card_chargeDeclined", "pm_card_authenticationRequired", None]
CUSTOMERS = ["a", "b"]
SEATS = st.sampled_from([5, 6, 10, 12, 20, 40, 40, 200, 999, 0, 4, 1000])  # mostly in bounds

PLANS = {"nipoplus": ["gold", "gold", "gold", "free"], "lineworks": ["lite", "basic", "premium"],
         "line-oa": ["communication", "light", "standard", "local_government"]}
ACTIONS = {"nipoplus": ["subscribe", "set_seats", "set_seats", "cancel", "set_payment_method", "change_plan", "advance"],
           "lineworks": ["subscribe", "set_seats", "set_members", "change_plan", "cancel", "set_payment_method", "advance"],
           "line-oa": ["subscribe", "change_plan", "cancel", "send_messages", "set_premium_id", "set_payment_method",
                       "advance"]}


@st.composite
def scenarios(draw: st.DrawFn, tenant: str) -> Scenario:
    cards = [draw(st.sampled_from(CARDS[:3]) | st.sampled_from(CARDS)), draw(st.sampled_from(CARDS))]
    customers = [{"id": c, "name": f"顧客{c}", **({"payment_method": pm} if pm else {})} for c, pm in zip(CUSTOMERS, cards, strict=True)]
    at = datetime(2024, 1, draw(st.integers(1, 31)), 9, tzinfo=JST)
    steps = []
    for n in range(draw(st.integers(1, 10))):
        at += timedelta(days=draw(st.integers(0, 45)), hours=draw(st.integers(0, 14)))
        action = "subscribe" if n == 0 else draw(st.sampled_from(ACTIONS[tenant]))  # most customers buy something
        step: dict[str, Any] = {"at": at, "action": action}
        if action != "advance":  # mostly the first customer, so that commands build on each other
            step["customer"] = "a" if n == 0 else draw(st.sampled_from(["a", "a", "a", "b"]))
        if action in ("subscribe", "change_plan"):
            step["plan"] = draw(st.sampled_from(PLANS[tenant][1:] if n == 0 and tenant == "line-oa" else PLANS[tenant]))
            if tenant == "lineworks":
                step["contract"] = draw(st.sampled_from(["monthly", "annual"]))
        if action == "subscribe" and tenant != "line-oa":
            step["seats"] = draw(SEATS)
        if action == "subscribe" and tenant == "lineworks":
            step["members"] = draw(st.integers(0, 40))
            step["trial_days"] = draw(st.sampled_from([0, 0, 14, 30]))
        if action == "set_seats":
            step["seats"] = draw(SEATS)
        if action == "set_members":
            step["members"] = draw(st.integers(0, 40))
        if action == "set_payment_method":
            step["payment_method"] = draw(st.sampled_from(["pm_card_visa", "pm_card_chargeDeclined", "pm_card_nope"]))
        if action == "send_messages":
            step["count"] = draw(st.integers(1, 60_000))
        if action == "set_premium_id":
            step["premium_id"] = draw(st.sampled_from(["@acme", "@acme_shop", "@x", "@ACME"]))
            step["billing"] = draw(st.sampled_from(["monthly", "annual"]))
        steps.append(step)
    steps.append({"at": at + timedelta(days=draw(st.integers(0, 70))), "action": "advance"})
    return Scenario(file=f"random-{tenant}", tenant=tenant, zone=JST, customers=customers, steps=steps)


def check_invariants(result: dict[str, Any]) -> None:
    invoices = result["invoices"]
    numbers = [int(re.sub(r"\D", "", i["number"])) for i in invoices]
    assert numbers == list(range(1, len(invoices) + 1)), "invoice numbers are gapless and in order"
    billed: set[tuple[str, str, str | None]] = set()
    applied = dict.fromkeys(CUSTOMERS, 0)
    notes = result["credit_notes"]
    for note in notes:
        assert note["total"] > 0 and 0 <= note["tax"] <= note["total"], note
    for inv in invoices:
        assert all(ln["amount"] >= 0 and ln["kind"] != "credit" for ln in inv["lines"]), f"a credit as a sale: {inv}"
        # each line prints the formula that gave its amount, ending with that amount
        assert all(ln.get("formula", "").endswith(f"= {ln['amount']}") for ln in inv["lines"]), inv
        sales = sum(ln["amount"] for ln in inv["lines"])
        assert sales == inv["subtotal"] == sum(t["total"] for t in inv["taxes"]), inv
        assert inv["tax"] == sum(t["tax"] for t in inv["taxes"]), inv
        gross = sales + (0 if result["tax_inclusive"] else inv["tax"])
        assert inv["total"] == gross - inv["credit_applied"], inv
        assert inv["total"] >= 0 and 0 <= inv["tax"] <= gross and 0 <= inv["credit_applied"] <= gross, inv
        who, on = inv["customer"], inv["issued_on"]
        applied[who] += inv["credit_applied"]
        issued_by = sum(n["total"] for n in notes if n["customer"] == who and n["issued_on"] <= on)
        issued_before = sum(n["total"] for n in notes if n["customer"] == who and n["issued_on"] < on)
        assert applied[who] <= issued_by, f"more credit applied than credit notes issued: {inv}"
        if inv["credit_applied"] < gross:
            assert applied[who] >= issued_before, f"credit left unused: {inv}"
        assert inv["status"] in ("paid", "open", "uncollectible", "void"), inv
        for ln in inv["lines"]:
            if ln["kind"] == "recurring" and inv["status"] != "void":  # a void sign-up billed nothing
                period = (inv["customer"], ln["description"], inv["period_start"])
                assert period not in billed, f"billed twice: {period}"
                billed.add(period)
    for step in result["steps"]:
        assert step["ok"] or re.fullmatch(r"[a-z_]+", step["error"]["code"]), step
    for customer in result["customers"]:
        assert customer["status"] in ("trialing", "active", "past_due", "suspended", "canceled", "incomplete", None), customer


def run_twice(scenario: Scenario) -> dict[str, Any]:
    first = run_scenario(scenario).as_json()
    again = run_scenario(scenario).as_json()
    assert json.dumps(first, ensure_ascii=False, sort_keys=True) == json.dumps(again, ensure_ascii=False, sort_keys=True)
    return first


@RANDOM
@given(scenario=scenarios("nipoplus"))
def test_random_nipoplus_scenarios_keep_the_invariants(scenario: Scenario) -> None:
    check_invariants(run_twice(scenario))


@RANDOM
@given(scenario=scenarios("lineworks"))
def test_random_lineworks_scenarios_keep_the_invariants(scenario: Scenario) -> None:
    check_invariants(run_twice(scenario))


@RANDOM
@given(scenario=scenarios("line-oa"))
def test_random_line_oa_scenarios_keep_the_invariants(scenario: Scenario) -> None:
    check_invariants(run_twice(scenario))
