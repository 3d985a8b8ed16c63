"""What an operator watches: ``GET /healthz`` and ``GET /metrics`` (Prometheus text format), no API key.

``/metrics`` reads the shared state from the database at each scrape (due
backlog, outbox depth per kind, charges by outcome, scheduled invoices), so
any one API process reports what all workers together have done; request
latency is this process's own, labelled by route template. Set
``KAKIN_METRICS_TOKEN`` to require ``Authorization: Bearer <token>`` on
``/metrics``.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from kakin.adapters.db import monitoring

router = APIRouter(tags=["operations"])
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DatabaseCollector(Collector):
    """The shared figures, read at each scrape in one read-only round of queries."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine, self.clock = engine, clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        with self.engine.connect() as conn:
            due = monitoring.due_backlog(conn, now)
            boxes = monitoring.outbox_backlog(conn, now)
            charges = monitoring.charges_by_outcome(conn)
            renewals = monitoring.scheduled_invoices(conn)
        yield GaugeMetricFamily("kakin_due_backlog", "Accounts with work due now (renewals, closes, retries…)", value=due.count)
        yield GaugeMetricFamily("kakin_due_backlog_oldest_age_seconds", "How long the oldest due account has waited",
                                value=due.oldest_age_seconds)
        depth = GaugeMetricFamily("kakin_outbox_depth", "Undelivered outbox rows (pending, in backoff or claimed)",
                                  labels=["kind"])
        age = GaugeMetricFamily("kakin_outbox_oldest_age_seconds", "Age of the oldest undelivered outbox row",
                                labels=["kind"])
        for kind, b in sorted(boxes.items()):
            depth.add_metric([kind], b.count)
            age.add_metric([kind], b.oldest_age_seconds)
        yield depth
        yield age
        total = CounterMetricFamily("kakin_charges", "Card charges made, by outcome", labels=["outcome"])
        for outcome in sorted({"succeeded", "failed", *charges}):
            total.add_metric([outcome], charges.get(outcome, 0))
        yield total
        yield CounterMetricFamily("kakin_renewals", "Invoices issued by the due-work run for a period (renewals, month "
                                  "closes); rate() gives renewals per second", value=renewals)


class RequestLatency:
    """ASGI middleware: each HTTP request's duration in a histogram by method, route template and status class."""

    def __init__(self, app: Any, histogram: Histogram) -> None:
        self.app, self.histogram = app, histogram

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"  # the template, never the raw path
            self.histogram.labels(scope["method"], route, f"{status[0] // 100}xx").observe(time.perf_counter() - started)


def install(app: Any, engine: Engine, clock: Callable[[], datetime]) -> None:
    """A registry of this app's own (tests make many apps), the latency middleware and the two routes."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(engine, clock))
    histogram = Histogram("kakin_http_request_duration_seconds", "HTTP request latency by route template",
                          ["method", "route", "status"], registry=registry, buckets=LATENCY_BUCKETS)
    app.state.metrics = registry
    app.add_middleware(RequestLatency, histogram=histogram)
    app.include_router(router)


@router.get("/healthz", include_in_schema=False, summary="Alive, and the database reachable: 200, else 503")
def healthz(request: Request) -> JSONResponse:
    try:
        with request.app.state.engine.connect() as conn:
            monitoring.ping(conn)
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": "unreachable",
                             "error": (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", include_in_schema=False, summary="Prometheus text format: backlogs, outboxes, charges, renewals, request latency")
def metrics(request: Request) -> Response:
    token = os.environ.get("KAKIN_METRICS_TOKEN")
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return JSONResponse({"error": {"code": "unauthorized", "message": "send Authorization: Bearer <KAKIN_METRICS_TOKEN>",
                                       "param": "Authorization"}}, status_code=401)
    try:
        body = generate_latest(request.app.state.metrics)
    except Exception as exc:
        return JSONResponse({"error": {"code": "database_unavailable", "message": f"the database cannot be read: {exc}"[:300],
                                       "param": None}}, status_code=503)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
