"""``kakin simulate`` as a command: JSON, tables, determinism and malformed files (exit status 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
KAKIN = [sys.executable, "-m", "kakin.cli"]
GOOD = """
tenant = "nipoplus"
[[customers]]
id = "acme"
name = "株式会社アクメ"
payment_method = "pm_card_visa"
[[steps]]
at = 2022-05-03T10:00:00
action = "subscribe"
customer = "acme"
plan = "gold"
seats = 10
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KAKIN, *args], capture_output=True, text=True, timeout=120)


def test_json_output_is_byte_identical_on_repeated_runs() -> None:
    file = str(SCENARIOS / "nipoplus-seat-decrease-carryover.toml")
    first, second = run("simulate", file, "--json"), run("simulate", file, "--json")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    data = json.loads(first.stdout)
    assert [i["number"] for i in data["invoices"]] == sorted(i["number"] for i in data["invoices"])
    assert {"tenant", "invoices", "steps", "customers"} <= set(data)


def test_tables_show_each_invoice_total(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(GOOD, encoding="utf-8")
    result = run("simulate", str(f))
    assert result.returncode == 0, result.stderr
    assert "1,800" in result.stdout and "SCENARIO-00000001" in result.stdout


def test_a_refused_step_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(GOOD + '\n[[steps]]\nat = 2022-05-04T10:00:00\naction = "set_seats"\ncustomer = "acme"\nseats = 1000\n'
                 '\n[[steps]]\nat = 2022-06-04T10:00:00\naction = "advance"\n', encoding="utf-8")
    data = json.loads(run("simulate", str(f), "--json").stdout)
    assert data["steps"][1]["ok"] is False
    assert data["steps"][1]["error"]["code"] == "seats_out_of_range"
    assert data["customers"][0]["seats"] == 10  # the refusal changed nothing
    assert [i["total"] for i in data["invoices"]] == [1800, 1800]


MALFORMED = [
    ("unknown action", GOOD.replace('action = "subscribe"', 'action = "subscribe_now"'), "steps[0]", "unknown action"),
    ("missing field", GOOD.replace('plan = "gold"\n', ""), "steps[0] (subscribe)", "missing field 'plan'"),
    ("wrong type", GOOD.replace("seats = 10", 'seats = "ten"'), "steps[0] (subscribe)", "seats must be an integer"),
    ("unknown field", GOOD.replace("seats = 10", "seats = 10\ncolour = 1"), "steps[0] (subscribe)", "unknown field 'colour'"),
    ("undeclared customer", GOOD.replace('customer = "acme"', 'customer = "nobody"'), "steps[0] (subscribe)", "not declared"),
    ("unknown tenant", GOOD.replace('tenant = "nipoplus"', 'tenant = "nowhere"'), "tenant", "no such catalog"),
    ("bad syntax", GOOD + "\n[[steps]\n", "(syntax)", "not valid TOML"),
    ("out of order", GOOD + '\n[[steps]]\nat = 2021-01-01T00:00:00\naction = "advance"\n', "steps[1] (advance)", "time order"),
    ("no steps", GOOD.split("[[steps]]")[0], "steps", "at least one"),
    ("unknown top-level key", "currency = 'USD'\n" + GOOD, "currency", "unknown key"),
    ("duplicate customer", GOOD.replace("[[steps]]", '[[customers]]\nid = "acme"\nname = "x"\n[[steps]]', 1), "customers[1]", "used twice"),
    ("bad time", GOOD.replace("at = 2022-05-03T10:00:00", 'at = "soon"'), "steps[0] (subscribe)", "date-time"),
    ("usage without an id", GOOD + '\n[[steps]]\nat = 2022-05-04T10:00:00\naction = "record_usage"\ncustomer = "acme"\n'
     'metric = "messages"\nquantity = 5\n', "steps[1] (record_usage)", "missing field 'transaction_id'"),
    ("usage with a bad timestamp", GOOD + '\n[[steps]]\nat = 2022-05-04T10:00:00\naction = "record_usage"\n'
     'customer = "acme"\nmetric = "messages"\nquantity = 5\ntransaction_id = "t1"\ntimestamp = "yesterday"\n',
     "steps[1] (record_usage)", "timestamp must be a TOML date-time"),
]


@pytest.mark.parametrize("name,text,where,problem", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_scenario_exits_2_naming_file_step_and_problem(tmp_path: Path, name: str, text: str, where: str,
                                                                   problem: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text, encoding="utf-8")
    result = run("simulate", str(f), "--json")
    assert result.returncode == 2
    assert result.stdout == ""  # nothing printed as a result
    message = " ".join(result.stderr.split())
    assert str(f) in message.replace(" ", "") or f.name in message
    assert where in message
    assert problem in message


def test_a_missing_scenario_file_exits_2(tmp_path: Path) -> None:
    result = run("simulate", str(tmp_path / "none.toml"))
    assert result.returncode == 2
    assert "no such file" in result.stderr
