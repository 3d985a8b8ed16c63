"""Catalog validation: every malformed file is refused naming the file, the dotted key and the reason."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from kakin.adapters.catalog_files import SHIPPED, load_catalog_file, resolve_catalog, shipped_path
from kakin.domain.catalog import Alignment, Basis, Timing, When
from kakin.domain.catalog_schema import parse_catalog
from kakin.domain.charges import usage_line
from kakin.domain.errors import CatalogError
from kakin.domain.money import Rounding
from kakin.domain.proration import Convention, prorated

FILE = "vendor-under-test.toml"


def shipped(code: str) -> dict[str, Any]:
    """A fresh, mutable copy of a shipped catalog as parsed TOML."""
    return tomllib.loads(shipped_path(code).read_text(encoding="utf-8"))


def refused(data: dict[str, Any], file: str = FILE) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, file)
    return info.value


def assert_names(error: CatalogError, file: str, key: str, reason: str) -> None:
    assert error.code == "catalog_invalid"
    assert error.file == file
    assert error.key == key
    assert reason in error.reason
    message = str(error)
    assert message.startswith(f"{file}: {key}: ")
    assert reason in message
    assert error.as_dict()["code"] == "catalog_invalid"
    assert error.as_dict()["param"] == key


def test_the_unmodified_shipped_catalogs_parse_from_a_dict() -> None:
    # the baseline every malformed case below starts from
    for code in SHIPPED:
        assert parse_catalog(shipped(code), FILE).code == code


# --- unknown keys ----------------------------------------------------------------------


def test_an_unknown_top_level_key_is_refused() -> None:
    data = shipped("nipoplus")
    data["plan"] = {}  # a misspelt "plans"
    assert_names(refused(data), FILE, "plan", "unknown key")


def test_an_unknown_key_in_the_vendor_table_is_refused() -> None:
    data = shipped("nipoplus")
    data["vendor"]["time_zone"] = "Asia/Tokyo"
    assert_names(refused(data), FILE, "vendor.time_zone", "unknown key")


def test_an_unknown_key_inside_a_plan_is_refused() -> None:
    data = shipped("nipoplus")
    data["plans"]["gold"]["max_seat"] = 999
    assert_names(refused(data), FILE, "plans.gold.max_seat", "unknown key")


def test_an_unknown_key_inside_a_price_is_refused() -> None:
    data = shipped("nipoplus")
    data["plans"]["gold"]["prices"]["monthly"]["unit_price"] = 180
    assert_names(refused(data), FILE, "plans.gold.prices.monthly.unit_price", "unknown key")


def test_an_unknown_key_inside_a_usage_tier_is_refused() -> None:
    data = shipped("line-oa")
    data["plans"]["standard"]["usage"]["messages"]["tiers"][0]["price"] = 3
    assert_names(refused(data), FILE, "plans.standard.usage.messages.tiers[0].price", "unknown key")


# --- wrong types -----------------------------------------------------------------------


def test_a_price_written_as_text_is_refused_as_the_wrong_type() -> None:
    data = shipped("nipoplus")
    data["plans"]["gold"]["prices"]["monthly"]["unit_amount"] = "180"
    assert_names(refused(data), FILE, "plans.gold.prices.monthly.unit_amount", "must be an integer, not str '180'")


def test_a_boolean_where_a_number_belongs_is_refused() -> None:
    data = shipped("lineworks")
    data["plans"]["basic"]["rank"] = True
    assert_names(refused(data), FILE, "plans.basic.rank", "must be an integer, not a boolean")


def test_text_where_true_or_false_belongs_is_refused() -> None:
    data = shipped("nipoplus")
    data["tax"]["inclusive"] = "yes"
    assert_names(refused(data), FILE, "tax.inclusive", "must be true or false")


def test_a_list_where_a_table_belongs_is_refused() -> None:
    data = shipped("nipoplus")
    data["plans"] = ["free", "gold"]
    assert_names(refused(data), FILE, "plans", "must be a table, not list")


# --- amounts and bounds ----------------------------------------------------------------


def test_a_negative_price_is_refused() -> None:
    data = shipped("nipoplus")
    data["plans"]["gold"]["prices"]["monthly"]["unit_amount"] = -180
    assert_names(refused(data), FILE, "plans.gold.prices.monthly.unit_amount", "is -180: a price cannot be negative")


def test_an_unknown_eligibility_rule_set_is_refused() -> None:
    data = shipped("line-oa")
    data["plans"]["local_government"]["eligibility"] = "schools"
    assert_names(refused(data), FILE, "plans.local_government.eligibility", "kakin has rules for jp_local_government")


def test_a_price_cannot_refuse_cancellation() -> None:
    data = shipped("lineworks")
    data["plans"]["basic"]["prices"]["annual"]["cancellation"] = "refused"
    assert_names(refused(data), FILE, "plans.basic.prices.annual.cancellation", "must be \"immediate\" or \"end_of_period\"")
    data["plans"]["basic"]["prices"]["annual"]["cancellation"] = "later"
    assert_names(refused(data), FILE, "plans.basic.prices.annual.cancellation", "is 'later': must be one of")


def test_a_negative_tier_price_is_refused() -> None:
    data = shipped("line-oa")
    data["plans"]["standard"]["usage"]["messages"]["tiers"][1]["unit_amount"] = "-2.8"
    assert_names(refused(data), FILE, "plans.standard.usage.messages.tiers[1].unit_amount", "write a non-negative decimal")


def test_a_negative_add_on_override_is_refused() -> None:
    data = shipped("line-oa")
    data["addons"]["premium_id"]["plan_overrides"]["local_government"]["monthly"] = -100
    assert_names(
        refused(data),
        FILE,
        "addons.premium_id.plan_overrides.local_government.monthly",
        "a price cannot be negative",
    )


def test_min_seats_above_max_seats_is_refused() -> None:
    data = shipped("nipoplus")
    data["plans"]["gold"]["min_seats"] = 1000
    assert_names(refused(data), FILE, "plans.gold.min_seats", "is 1000, above max_seats = 999")


# --- tiers -----------------------------------------------------------------------------


def test_a_gap_between_tiers_is_refused() -> None:
    data = shipped("line-oa")
    data["plans"]["standard"]["usage"]["messages"]["tiers"][1]["first"] = 50002
    assert_names(
        refused(data),
        FILE,
        "plans.standard.usage.messages.tiers[1].first",
        "is 50002 but tiers[0] ends at 50000: tiers must be contiguous, with no gap or overlap (use first = 50001)",
    )


def test_overlapping_tiers_are_refused() -> None:
    data = shipped("line-oa")
    data["plans"]["standard"]["usage"]["messages"]["tiers"][1]["first"] = 49001
    assert_names(
        refused(data),
        FILE,
        "plans.standard.usage.messages.tiers[1].first",
        "is 49001 but tiers[0] ends at 50000",
    )


def test_a_first_tier_not_starting_after_the_included_quantity_is_refused() -> None:
    data = shipped("line-oa")
    data["plans"]["standard"]["usage"]["messages"]["tiers"][0]["first"] = 30002
    assert_names(
        refused(data),
        FILE,
        "plans.standard.usage.messages.tiers[0].first",
        "the included quantity ends at 30000",
    )


def test_an_open_ended_tier_that_is_not_last_is_refused() -> None:
    data = shipped("line-oa")
    del data["plans"]["standard"]["usage"]["messages"]["tiers"][0]["last"]
    assert_names(
        refused(data),
        FILE,
        "plans.standard.usage.messages.tiers[1].first",
        "only the final tier may be open-ended",
    )


# --- references to plans ---------------------------------------------------------------


def test_an_unknown_plan_in_a_plan_change_rule_is_refused() -> None:
    data = shipped("nipoplus")
    data["plan_changes"][0]["to"] = "platinum"
    assert_names(refused(data), FILE, "plan_changes[0].to", "names unknown plan 'platinum'; known plans: free, gold")


def test_an_unknown_plan_in_a_plan_change_list_is_refused() -> None:
    data = shipped("lineworks")
    data["plan_changes"][1]["from"] = ["basic", "enterprise"]
    assert_names(refused(data), FILE, "plan_changes[1].from", "names unknown plan 'enterprise'")


def test_an_unknown_default_plan_is_refused() -> None:
    data = shipped("nipoplus")
    data["billing"]["default_plan"] = "silver"
    assert_names(refused(data), FILE, "billing.default_plan", "names unknown plan 'silver'; known plans: free, gold")


def test_an_unknown_fallback_plan_is_refused() -> None:
    data = shipped("line-oa")
    data["billing"]["fallback_plan"] = "free"
    assert_names(refused(data), FILE, "billing.fallback_plan", "names unknown plan 'free'")


# --- tax and rounding ------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["10", "ten percent", "10 %", "-10%", "0.1"])
def test_a_tax_rate_not_written_as_a_percentage_is_refused(rate: str) -> None:
    data = shipped("lineworks")
    data["tax"]["rate"] = rate
    assert_names(refused(data), FILE, "tax.rate", f'is {rate!r}: write a percentage such as "10%"')


def test_a_tax_rate_written_as_a_number_is_refused_as_the_wrong_type() -> None:
    data = shipped("lineworks")
    data["tax"]["rate"] = 10
    assert_names(refused(data), FILE, "tax.rate", "must be a string")


def test_a_fractional_tax_rate_is_read_exactly() -> None:
    data = shipped("lineworks")
    data["tax"]["rate"] = "8%"
    assert parse_catalog(data, FILE).tax_rate == Fraction(2, 25)


def test_a_price_and_a_usage_metric_may_carry_the_reduced_rate_beside_the_standard_one() -> None:
    data = shipped("line-oa")
    data["plans"]["standard"]["prices"]["monthly"]["tax_rate"] = "8%"
    data["plans"]["standard"]["usage"]["messages"]["tax_rate"] = "8%"
    catalog = parse_catalog(data, FILE)
    assert catalog.tax_rate == Fraction(1, 10)
    assert catalog.plans["standard"].prices["monthly"].tax_rate == Fraction(2, 25)
    assert catalog.plans["standard"].usage["messages"].tax_rate == Fraction(2, 25)
    assert catalog.plans["light"].prices["monthly"].tax_rate is None  # the standard rate


@pytest.mark.parametrize("rate", ["8", "eight", "8 %"])
def test_a_price_tax_rate_not_written_as_a_percentage_is_refused(rate: str) -> None:
    data = shipped("line-oa")
    data["plans"]["standard"]["prices"]["monthly"]["tax_rate"] = rate
    assert_names(refused(data), FILE, "plans.standard.prices.monthly.tax_rate", 'write a percentage such as "10%"')


def test_a_usage_tax_rate_written_as_a_number_is_refused_as_the_wrong_type() -> None:
    data = shipped("line-oa")
    data["plans"]["standard"]["usage"]["messages"]["tax_rate"] = 8
    assert_names(refused(data), FILE, "plans.standard.usage.messages.tax_rate", "must be a string")


def test_an_unknown_tax_rounding_name_is_refused() -> None:
    data = shipped("lineworks")
    data["tax"]["rounding"] = "round_down"
    assert_names(refused(data), FILE, "tax.rounding", "is 'round_down': must be one of 'floor', 'ceil', 'half_up'")


def test_an_unknown_line_rounding_name_is_refused() -> None:
    data = shipped("nipoplus")
    data["billing"]["line_rounding"] = "bankers"
    assert_names(refused(data), FILE, "billing.line_rounding", "is 'bankers': must be one of")


# --- files -----------------------------------------------------------------------------


def _write_shipped_with(tmp_path: Path, code: str, edit: Callable[[str], str]) -> Path:
    text = shipped_path(code).read_text(encoding="utf-8")
    changed = edit(text)
    assert changed != text, "the edit must change the file"
    path = tmp_path / f"{code}.toml"
    path.write_text(changed, encoding="utf-8")
    return path


def test_an_unknown_time_zone_is_refused_on_load(tmp_path: Path) -> None:
    path = _write_shipped_with(
        tmp_path, "nipoplus", lambda t: t.replace('timezone = "Asia/Tokyo"', 'timezone = "Mars/Olympus_Mons"')
    )
    with pytest.raises(CatalogError) as info:
        load_catalog_file(path)
    assert_names(info.value, str(path), "vendor.timezone", "'Mars/Olympus_Mons' is not an IANA time zone")


def test_invalid_toml_syntax_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _write_shipped_with(tmp_path, "lineworks", lambda t: t.replace("[tax]", "[tax", 1))
    with pytest.raises(CatalogError) as info:
        load_catalog_file(path)
    assert_names(info.value, str(path), "(syntax)", "is not valid TOML")


def test_a_missing_catalog_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(CatalogError) as info:
        load_catalog_file(path)
    assert_names(info.value, str(path), "(file)", "no such file")


def test_a_catalog_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sjis.toml"
    path.write_bytes('[vendor]\nname = "日報"\n'.encode("shift_jis"))
    with pytest.raises(CatalogError) as info:
        load_catalog_file(path)
    assert_names(info.value, str(path), "(file)", "is not UTF-8 text")


def test_a_malformed_file_on_disk_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = _write_shipped_with(tmp_path, "nipoplus", lambda t: t.replace("min_seats = 5", "min_seats = 5000"))
    with pytest.raises(CatalogError) as info:
        load_catalog_file(path)
    assert_names(info.value, str(path), "plans.gold.min_seats", "is 5000, above max_seats = 999")


def test_an_unknown_catalog_reference_is_refused() -> None:
    with pytest.raises(CatalogError) as info:
        resolve_catalog("no-such-vendor")
    assert_names(info.value, "no-such-vendor", "(file)", "no such catalog")


# --- shipped catalogs and a fourth vendor ------------------------------------------------


def test_all_three_shipped_catalogs_load() -> None:
    lineworks = load_catalog_file(shipped_path("lineworks"))
    nipoplus = load_catalog_file(shipped_path("nipoplus"))
    line_oa = load_catalog_file(shipped_path("line-oa"))

    assert (lineworks.code, nipoplus.code, line_oa.code) == ("lineworks", "nipoplus", "line-oa")
    assert [(p.code, p.prices["annual"].unit_amount, p.prices["monthly"].unit_amount) for p in lineworks.plans.values()] == [
        ("lite", 300, 360),
        ("basic", 500, 600),
        ("premium", 1000, 1200),
    ]
    assert lineworks.tax_inclusive is False
    gold = nipoplus.plan("gold")
    assert (gold.prices["monthly"].unit_amount, gold.min_seats, gold.max_seats) == (180, 5, 999)
    assert nipoplus.tax_inclusive is True
    assert gold.prices["monthly"].proration.convention is Convention.FIXED_DAYS
    assert [p.prices["monthly"].unit_amount for p in line_oa.plans.values()] == [0, 5000, 15000, 0]
    assert line_oa.admin_limit == 100
    for catalog in (lineworks, nipoplus, line_oa):
        assert catalog.tax_rate == Fraction(1, 10)
        assert catalog.timezone == "Asia/Tokyo"
        assert catalog.currency == "JPY"


def test_shipped_catalogs_resolve_by_code() -> None:
    for code in SHIPPED:
        assert resolve_catalog(code).code == code


FOURTH_VENDOR = """
# A fourth vendor, written only as data.
[vendor]
code = "hanko-cloud"
name = "ハンコクラウド"
timezone = "Asia/Tokyo"

[tax]
rate = "10%"
inclusive = false
rounding = "half_up"

[billing]
line_rounding = "floor"
default_plan = "starter"
fallback_plan = "starter"

[trial]
days = 14

[dunning]
retry_days = [2, 4]
after_last_failure = "fallback_plan"

[[plan_changes]]
from = "starter"
to = "business"
when = "immediate"

[[plan_changes]]
from = "business"
to = "starter"
when = "end_of_period"

[plans.starter]
name = { ja = "スターター", en = "Starter" }
rank = 0
[plans.starter.usage.stamps]
included = 50
hard_limit = true

[plans.business]
name = { ja = "ビジネス", en = "Business" }
rank = 1
min_seats = 3
max_seats = 300
requires_payment_method = true
[plans.business.prices.monthly]
basis = "seat"
unit_amount = 450
timing = "in_advance"
alignment = "anniversary"
proration = "fixed_days"
proration_days = 30
[plans.business.usage.stamps]
included = 1000
tiers = [
  { first = 1001, last = 5000, unit_amount = "1.5" },
  { first = 5001, unit_amount = 1 },
]
"""


def test_a_fourth_vendor_written_only_as_a_toml_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "hanko-cloud.toml"
    path.write_text(FOURTH_VENDOR, encoding="utf-8")

    catalog = load_catalog_file(path)
    assert resolve_catalog(str(path)).code == "hanko-cloud"

    assert catalog.code == "hanko-cloud"
    assert catalog.tax_rounding is Rounding.HALF_UP
    assert catalog.trial_days == 14
    assert catalog.change_policy("starter", "monthly", "business", "monthly") is When.IMMEDIATE
    assert catalog.change_policy("business", "monthly", "starter", "monthly") is When.END_OF_PERIOD
    business = catalog.plan("business")
    price = business.prices["monthly"]
    assert (price.basis, price.timing, price.alignment) == (Basis.SEAT, Timing.IN_ADVANCE, Alignment.ANNIVERSARY)
    # its data drives the same domain code: 450 × 15 ÷ 30 × 2 = 450
    assert prorated(450, 2, date(2024, 6, 18), date(2024, 6, 3), date(2024, 7, 3), price.proration).exact == 450
    # 4,000 × 1.5 + 1,000 × 1 = 7,000 for 6,000 stamps
    stamps = business.usage["stamps"]
    item = usage_line(catalog, business, stamps, 6000, date(2024, 6, 1))
    assert item is not None
    assert item.amount == 7000


# --- hard declines and small balances (issue 9 items 7 and 8) --------------------------------


def test_hard_decline_codes_default_to_the_cards_no_retry_can_cure_and_may_be_set() -> None:
    default = parse_catalog(shipped("nipoplus"), FILE).dunning.hard_decline_codes
    assert default == {"expired_card", "lost_card", "stolen_card", "incorrect_number", "card_not_supported"}
    data = shipped("nipoplus")
    data["dunning"]["hard_decline_codes"] = ["lost_card", "stolen_card", "fraudulent"]
    assert parse_catalog(data, FILE).dunning.hard_decline_codes == {"lost_card", "stolen_card", "fraudulent"}


@pytest.mark.parametrize(("codes", "reason"), [(["lost_card", "lost_card"], "give distinct decline codes"),
                                               (["Lost Card"], "give distinct decline codes"),
                                               ([7], "give distinct decline codes"), ("lost_card", "must be a list")])
def test_malformed_hard_decline_codes_are_refused(codes: Any, reason: str) -> None:
    data = shipped("nipoplus")
    data["dunning"]["hard_decline_codes"] = codes
    assert_names(refused(data), FILE, "dunning.hard_decline_codes", reason)


def test_small_balance_days_default_to_30_and_must_be_a_positive_count() -> None:
    assert parse_catalog(shipped("lineworks"), FILE).small_balance_days == 30
    data = shipped("lineworks")
    data["billing"]["small_balance_days"] = 60
    assert parse_catalog(data, FILE).small_balance_days == 60
    data["billing"]["small_balance_days"] = 0
    assert refused(data).key == "billing.small_balance_days"


# --- [domains] -------------------------------------------------------------------------


def test_the_lineworks_catalog_provides_group_by_works_com_and_the_mx_records_for_mail() -> None:
    domains = parse_catalog(shipped("lineworks"), FILE).domains
    assert domains.provided_suffix == "by-works.com"
    assert [(mx.priority, mx.value) for mx in domains.mx_records] == [(10, "mx1.worksmobile.com"), (20, "mx2.worksmobile.com")]


@pytest.mark.parametrize(("domains", "key", "reason"), [
    ({"provided_suffix": "by works"}, "domains.provided_suffix", "write a domain"),
    ({"mx_records": ["mx1.example.com"]}, "domains.mx_records[0]", "must be a table"),
    ({"mx_records": [{"priority": 10, "value": "not a host"}]}, "domains.mx_records[0].value", "write a host name"),
    ({"mx_records": [{"priority": -1, "value": "mx.example.com"}]}, "domains.mx_records[0].priority", "at least 0"),
    ({"mx_records": [{"priority": 10, "value": "mx.example.com", "ttl": 60}]}, "domains.mx_records[0].ttl", "unknown key"),
    ({"suffix": "by-works.com"}, "domains.suffix", "unknown key"),
])
def test_a_malformed_domains_table_is_refused_naming_the_key(domains: dict[str, Any], key: str, reason: str) -> None:
    data = shipped("lineworks")
    data["domains"] = domains
    assert_names(refused(data), FILE, key, reason)
