"""The console dashboard's figures, each checked against a month seeded through the services and computed by hand."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.services import access, analytics, billing, due_run, eligibility, operations, usage
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
LAST_YEAR = ["2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12",
             "2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=JST)


def dashboard(engine: Engine, code: str, today: date) -> analytics.Dashboard:
    with UnitOfWork(engine, readonly=True) as uow:
        return analytics.dashboard(uow, open_tenant(uow, code).row, today)


def seed_lineworks(engine: Engine, gateway: CardSimulator) -> None:
    """LINE WORKS, post-paid on the 1st for the month before, tax excluded (10%, floored). Seeded May–June 2026:

    - alpha: basic monthly, 10 users from May 1; credit note of 1,000 yen on June 4 against its June invoice.
    - beta: premium annual, 20 licenses and 25 users from May 1 (5 users beyond the licenses).
    - gamma: signs up on June 2 for lite with the 30-day trial (new this month, trialing).
    - delta: lite monthly, 8 users from May 1, cancelled on June 2 (at once: LINE WORKS monthly).
    - epsilon: basic monthly, 4 users from May 1; its card is declined from May 20, so the June 1 charge fails
      (retried June 2 and 4, next June 6): past due.
    - zeta: basic monthly, 2 users from May 1, pays by bank transfer: its June 1 invoice is due July 1.
    """
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "lw", "LINE WORKS", "lineworks", at(4, 1))
        other = create_tenant(uow, "other", "Other vendor", "lineworks", at(4, 1))
        for key, members in (("alpha", 10), ("beta", 25), ("delta", 8), ("epsilon", 4), ("zeta", 2)):
            billing.create_customer(uow, tenant, gateway, key, f"{key} 株式会社", at(5, 1), payment_method="pm_card_visa",
                                    members=members)
        billing.create_customer(uow, other, gateway, "omega", "Omega", at(6, 3), payment_method="pm_card_visa", members=50)
        operations.set_collection(uow, tenant, gateway, CommandLine(tenant.row), "zeta", "bank_transfer", at(5, 1))
        for key, plan, contract, seats in (("alpha", "basic", "monthly", None), ("beta", "premium", "annual", 20),
                                           ("delta", "lite", "monthly", None), ("epsilon", "basic", "monthly", None),
                                           ("zeta", "basic", "monthly", None)):
            billing.subscribe(uow, tenant, gateway, key, at(5, 1), plan, contract=contract, seats=seats, trial_days=0)
        billing.subscribe(uow, other, gateway, "omega", at(6, 3), "premium", contract="monthly", trial_days=0)
        billing.set_payment_method(uow, tenant, gateway, "epsilon", at(5, 20), "pm_card_chargeDeclined")
    due_run.run_due(lambda: UnitOfWork(engine), "lw", gateway, at(6, 2, 9))
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "lw")
        billing.create_customer(uow, tenant, gateway, "gamma", "gamma 株式会社", at(6, 2), payment_method="pm_card_visa",
                                members=5)
        billing.subscribe(uow, tenant, gateway, "gamma", at(6, 2), "lite", contract="monthly")
        billing.cancel(uow, tenant, gateway, "delta", at(6, 2))
    due_run.run_due(lambda: UnitOfWork(engine), "lw", gateway, at(6, 4, 12))
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "lw")
        june_alpha = next(i for i in uow.invoices_for(tenant.row) if i["customer"] == "alpha")
        operations.issue_credit_note(uow, tenant, gateway, CommandLine(tenant.row), str(june_alpha["number"]), 1000,
                                     "二重請求の返金", at(6, 4))


def test_the_lineworks_dashboard_matches_the_month_computed_by_hand(engine: Engine) -> None:
    gateway = CardSimulator()
    seed_lineworks(engine, gateway)
    board = dashboard(engine, "lw", date(2026, 6, 5))
    # Active and past-due main subscriptions, per month before tax:
    #   alpha basic 600 × 10 = 6,000; beta premium annual 1,000 × 20 + 1,200 × (25 − 20) = 26,000;
    #   epsilon (past due) 600 × 4 = 2,400; zeta 600 × 2 = 1,200; gamma's trial and delta's cancelled plan count 0.
    assert board.mrr == 35600  # 6,000 + 26,000 + 2,400 + 1,200
    assert board.arr == 427200  # 12 × 35,600
    assert board.active_by_plan == {"basic": 3, "premium": 1}  # alpha, epsilon, zeta; beta
    assert board.new_this_month == 1  # gamma (June 2); omega is another tenant's
    assert board.churned_this_month == 1  # delta, cancelled June 2
    # June 1: May's invoices before tax, 6,000 + 26,000 + 2,400 + 1,200 + delta's lite 360 × 8 = 2,880 → 38,480;
    # less alpha's credit note of June 4, 1,000 before tax → 37,480. Nothing was invoiced before June.
    assert board.invoiced_by_month == [(m, 0) for m in LAST_YEAR] + [("2026-06", 37480)]
    assert board.messages_by_month == [(m, 0) for m in [*LAST_YEAR, "2026-06"]]
    # Open: epsilon's June invoice 2,400 + tax 240 = 2,640 (charge failed: overdue) and zeta's bank transfer
    # 1,200 + 120 = 1,320 (due July 1: not yet overdue).
    assert board.open_amount == 3960  # 2,640 + 1,320
    assert board.overdue_amount == 2640


def test_a_cancellation_pending_to_the_end_of_its_period_counts_as_churn_in_the_month_it_takes_effect(
        engine: Engine) -> None:
    gateway = CardSimulator()
    seed_lineworks(engine, gateway)
    with UnitOfWork(engine) as uow:
        billing.cancel(uow, open_tenant(uow, "lw"), gateway, "beta", at(6, 5))  # annual: runs to the end of its term
    board = dashboard(engine, "lw", date(2026, 6, 5))
    assert board.churned_this_month == 1  # still delta alone: beta's term runs to April 2027
    assert board.mrr == 35600  # beta is billed to the end of its term: still 6,000 + 26,000 + 2,400 + 1,200


def seed_line_oa(engine: Engine, gateway: CardSimulator) -> None:
    """LINE OA, fees in advance on the 1st (the full fee when taken mid-month), tax excluded. Seeded May–June 2026:

    - light1: light from May 10; 1,200 messages in May, 300 in June.
    - std1: standard from May 10; 35,000 messages in May (5,000 beyond the 30,000 included, billed with June's fee),
      10,000 in June; a premium ID on the annual contract from June 5 (1,200 yen a year).
    - free1: created June 3 on the communication plan (free); 150 messages in June.
    - yokohama (横浜市): created May 10, approved for the local-government plan on May 12, with a monthly premium ID
      from May 12 (free under that plan).
    """
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "oa", "LINE OA", "line-oa", at(5, 1))
        for key in ("light1", "std1"):
            billing.create_customer(uow, tenant, gateway, key, f"{key} 商店", at(5, 10), payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "light1", at(5, 10), "light")
        billing.subscribe(uow, tenant, gateway, "std1", at(5, 10), "standard")
        usage.consume(uow, tenant, "light1", "messages", 1200, at(5, 20))
        usage.consume(uow, tenant, "std1", "messages", 35000, at(5, 20))
        city = billing.create_customer(uow, tenant, gateway, "yokohama", "横浜市", at(5, 10), payment_method="pm_card_visa")
        admin = access.add_super_admin(uow, tenant.row, city.id or 0, "koho@city.yokohama.lg.jp", "広報課", at(5, 10))
        eligibility.verify_account(uow, tenant, CommandLine(tenant.row), "yokohama", at(5, 11))
        application = eligibility.apply(uow, access.Operator(tenant.row, "owner", "test").acting_for(admin), "yokohama",
                                        "local_government", "141003", "koho@city.yokohama.lg.jp", False,
                                        lambda: at(5, 11))
        eligibility.decide(uow, tenant, gateway, CommandLine(tenant.row), str(application["id"]), True, None, at(5, 12))
        billing.set_premium_id(uow, tenant, gateway, "yokohama", at(5, 12), "@yokohama-city")
    due_run.run_due(lambda: UnitOfWork(engine), "oa", gateway, at(6, 2))
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "oa")
        billing.create_customer(uow, tenant, gateway, "free1", "free1 町内会", at(6, 3))
        usage.consume(uow, tenant, "light1", "messages", 300, at(6, 4))
        usage.consume(uow, tenant, "std1", "messages", 10000, at(6, 4))
        usage.consume(uow, tenant, "free1", "messages", 150, at(6, 4))
        billing.set_premium_id(uow, tenant, gateway, "std1", at(6, 5), "@kakin-std", billing="annual")


def test_the_line_oa_dashboard_counts_flat_fees_add_ons_overage_and_messages_by_hand(engine: Engine) -> None:
    gateway = CardSimulator()
    seed_line_oa(engine, gateway)
    board = dashboard(engine, "oa", date(2026, 6, 20))
    # light 5,000 + standard 15,000 + the annual premium ID 1,200 ÷ 12 = 100 + yokohama's premium ID 0 (free under
    # the local-government plan); overage is usage, not recurring
    assert board.mrr == 20100
    assert board.arr == 241200  # 12 × 20,100
    assert board.active_by_plan == {"communication": 1, "light": 1, "local_government": 1, "standard": 1}
    assert board.new_this_month == 1  # free1
    assert board.churned_this_month == 0
    # May: the full fees at sign-up, 5,000 + 15,000 = 20,000. June: light 5,000; standard 15,000 + May's overage
    # (35,000 − 30,000) × 3 = 15,000; the premium ID 1,200 → 36,200.
    assert board.invoiced_by_month == [(m, 0) for m in LAST_YEAR[:-1]] + [("2026-05", 20000), ("2026-06", 36200)]
    # May: 1,200 + 35,000 = 36,200; June: 300 + 10,000 + 150 = 10,450
    assert board.messages_by_month == [(m, 0) for m in LAST_YEAR[:-1]] + [("2026-05", 36200), ("2026-06", 10450)]
    assert (board.open_amount, board.overdue_amount) == (0, 0)


def test_a_tax_inclusive_price_counts_in_mrr_without_its_tax_rounded_once_over_all_customers(engine: Engine) -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "np", "NipoPlus", "nipoplus", at(5, 1))
        for key, seats in (("ten", 10), ("six", 6)):
            billing.create_customer(uow, tenant, gateway, key, key, at(5, 3), payment_method="pm_card_visa")
            billing.subscribe(uow, tenant, gateway, key, at(5, 3), "gold", seats=seats)
        billing.create_customer(uow, tenant, gateway, "free", "free", at(5, 3))
    board = dashboard(engine, "np", date(2026, 5, 31))
    # 180 yen a user, tax included: (180 × 10 + 180 × 6) ÷ 1.1 = 2,880 ÷ 1.1 = 2,618.18… → 2,618, floored once
    # (per customer, 1,636.36… → 1,636 and 981.81… → 981 would give 2,617)
    assert board.mrr == 2618
    assert board.arr == 31416  # 12 × 2,618
    assert board.active_by_plan == {"free": 1, "gold": 2}
    # sales before tax, as invoiced (tax once per invoice): 1,800 − floor(1,800 × 10 ÷ 110) = 1,800 − 163 = 1,637;
    # 1,080 − floor(1,080 × 10 ÷ 110) = 1,080 − 98 = 982 → 2,619
    assert board.invoiced_by_month[-1] == ("2026-05", 2619)
