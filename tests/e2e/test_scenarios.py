"""Every scenario file with an expected result, run through the simulator.

The comparison follows the public checker: invoices and credit notes with a
non-zero total by (customer, issued_on, total[, tax, credit_applied, …]); step
ok, error codes and duplicates; customers' plan, status and seats where pinned.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kakin.simulator import load_scenario, run_scenario

HERE = Path(__file__).resolve().parent.parent / "scenarios"
PUBLIC = Path(__file__).resolve().parents[3] / "shared" / "scenarios"
FILES = sorted(HERE.glob("*.toml")) + (sorted(PUBLIC.glob("*.toml")) if PUBLIC.is_dir() else [])


def _key(inv: dict) -> tuple:
    return (inv.get("issued_on", ""), inv.get("customer", ""), inv.get("total", 0))


def compare(expected: dict, actual: dict) -> list[str]:
    problems = []
    for kind in ("invoices", "credit_notes"):
        if kind not in expected:
            continue
        want = sorted((i for i in expected[kind] if i.get("total") != 0), key=_key)
        got = sorted((i for i in actual[kind] if i.get("total") != 0), key=_key)
        if len(want) != len(got):
            problems.append(f"{len(got)} {kind}, expected {len(want)}: "
                            + ", ".join(f"{i['customer']} {i['issued_on']} {i['total']}" for i in got))
        else:
            for w, g in zip(want, got, strict=True):
                problems += [f"{kind} {w}: {k} is {g.get(k)!r}" for k, v in w.items() if g.get(k) != v]
    for w in expected.get("steps", []):
        g = actual["steps"][w["index"]]
        if "ok" in w and g["ok"] != w["ok"]:
            problems.append(f"step {w['index']} ({g['action']}): ok is {g['ok']}, error {g.get('error')}")
        if "code" in w and (g.get("error") or {}).get("code") != w["code"]:
            problems.append(f"step {w['index']} ({g['action']}): code {(g.get('error') or {}).get('code')!r}, expected {w['code']!r}")
        if "duplicate" in w and g.get("duplicate") != w["duplicate"]:
            problems.append(f"step {w['index']} ({g['action']}): duplicate is {g.get('duplicate')!r}, expected {w['duplicate']!r}")
    customers = {c["id"]: c for c in actual["customers"]}
    for w in expected.get("customers", []):
        g = customers[w["id"]]
        problems += [f"customer {w['id']}: {k} is {g.get(k)!r}, expected {v!r}" for k, v in w.items() if g.get(k) != v]
    return problems


@pytest.mark.parametrize("scenario", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_scenario_bills_exactly_what_its_expected_file_says(scenario: Path) -> None:
    expected_file = scenario.with_suffix("").with_suffix(".expected.json")
    expected = json.loads(expected_file.read_text(encoding="utf-8"))
    outcome = run_scenario(load_scenario(scenario)).as_json()
    assert compare(expected, outcome) == []


def test_there_are_scenarios_for_every_reference_vendor() -> None:
    tenants = {load_scenario(p).tenant for p in FILES}
    assert {"nipoplus", "lineworks", "line-oa"} <= tenants


def test_every_invoice_is_never_negative_and_its_lines_add_up() -> None:
    for path in FILES:
        for inv in run_scenario(load_scenario(path)).as_json()["invoices"]:
            assert inv["total"] >= 0, (path.name, inv)
            assert sum(ln["amount"] for ln in inv["lines"]) == inv["subtotal"], (path.name, inv)
