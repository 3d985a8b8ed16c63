"""The REST API under concurrent writes on PostgreSQL: a deadlock is retried inside kakin, never a 500 (issue 10)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.api.app import create_app
from kakin.services.access import create_api_key
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")


def test_twenty_seat_changes_racing_a_test_clock_advance_over_the_renewal_get_no_500(pg_url: str) -> None:
    engine = make_engine(pg_url)
    migrate(engine)
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", datetime(2026, 1, 1, tzinfo=JST))
        key = create_api_key(uow, tenant.row, "owner", "owner key", datetime(2026, 1, 1, tzinfo=JST))
    headers = {"Authorization": f"Bearer {key}"}
    statuses: Counter[int] = Counter()
    with TestClient(create_app(engine, CardSimulator(), lambda: datetime(2026, 5, 3, 10, tzinfo=JST))) as client:
        for round_no in range(3):  # each round: a fresh clock and customer, 20 seat changes and one advance at once
            clock = client.post("/v1/test_clocks", headers=headers,
                                json={"name": f"r{round_no}", "frozen_time": "2026-05-03T10:00:00+09:00"}).json()
            cid = f"race{round_no}"
            r = client.post("/v1/customers", headers=headers, json={
                "id": cid, "name": "株式会社レース", "payment_method": "pm_card_visa", "test_clock": clock["id"],
                "super_admin": {"email": f"admin@{cid}.example", "name": "管理者"}})
            assert r.status_code == 201, r.text
            admin = {**headers, "Kakin-Acting-Member": r.json()["super_admin"]["id"]}
            r = client.post(f"/v1/customers/{cid}/subscription", headers=admin, json={"plan": "gold", "seats": 10})
            assert r.status_code == 200, r.text
            start = threading.Barrier(21)

            def seats(n: int, admin: dict[str, str] = admin, cid: str = cid, start: threading.Barrier = start) -> None:
                start.wait()
                statuses[client.post(f"/v1/customers/{cid}/subscription/seats", headers=admin, json={"seats": n}).status_code] += 1

            def advance(clock_id: str = clock["id"], start: threading.Barrier = start) -> None:
                start.wait()
                statuses[client.post(f"/v1/test_clocks/{clock_id}/advance", headers=headers,
                                     json={"frozen_time": "2026-06-20T10:00:00+09:00"}).status_code] += 1

            threads = [threading.Thread(target=seats, args=(11 + i,)) for i in range(20)] + [threading.Thread(target=advance)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            invoices = client.get(f"/v1/customers/{cid}/invoices", headers=headers).json()["data"]
            assert sum(1 for i in invoices if i["issued_on"] == "2026-06-03") == 1  # the June 3 renewal, once
    assert statuses[500] == 0, statuses
    assert statuses[200] == 63, statuses  # 20 seat changes and one advance, three rounds
    engine.dispose()
