"""API load benchmark: an open-loop load at a fixed rate against `kakin serve` on SQLite.

Starts ``python -m kakin.cli serve`` on 127.0.0.1 (a free port) over a fresh SQLite file database in a temporary
directory, reads the owner API keys it prints, waits until it answers, creates a few NipoPlus customers subscribed to
GOLD, then sends requests at a fixed rate whether or not earlier ones have come back (open loop: a slow server is
not rewarded with fewer requests) and reports what it got:

- reads: GET /v1/customers, GET /v1/customers/{id}, GET /v1/catalog, GET /v1/invoices (equal shares);
- writes: POST /v1/customers/{id}/subscription/seats on one of those customers, acting as its super admin
  (``Kakin-Acting-Member``), seats between 5 and 60, so each write prorates onto the next invoice.

Latency is measured from the moment a request was due to be sent, so time spent waiting in the client counts too.
A baseline phase first sends GET /openapi.json (no database) at the same rate to the same server: the floor that
the HTTP stack, the client and the machine give. The target is p99 < 50 ms at 200 requests/s.

    python benchmarks/api_load.py                        # 200 req/s for 20 s (and a 20 s baseline)
    python benchmarks/api_load.py --rate 400 --seconds 10 --write-share 0.5

The server is stopped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
KEY_ROW = re.compile(r"│\s*([a-z][a-z0-9-]*)\s*│\s*(kk_[0-9a-f]+_[A-Za-z0-9_-]+)\s*│")
READS = ["GET /v1/customers", "GET /v1/customers/{id}", "GET /v1/catalog", "GET /v1/invoices"]
WRITE = "POST /v1/customers/{id}/subscription/seats"


def cpu_seconds(pid: int | None = None) -> float | None:
    """CPU time (user + system) used so far by a process (Linux /proc), or by this one; None where unknown."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Phase:
    results: list[Result]
    wall: float
    server_cpu: float | None  # seconds
    client_cpu: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """`kakin serve` in a subprocess: started, its keys read from what it prints, stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.database = f"sqlite:///{workdir / 'kakin.db'}"
        self.stderr_path = workdir / "server.stderr"
        self.output: list[str] = []
        self.keys: dict[str, str] = {}
        self._keys_seen = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def __enter__(self) -> Server:
        env = {**os.environ, "KAKIN_DATABASE_URL": self.database, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kakin.cli", "serve", "--host", HOST, "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env, start_new_session=True)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        return self

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))
            if m := KEY_ROW.search(line):
                self.keys[m.group(1)] = m.group(2)
                if {"nipoplus", "lineworks", "line-oa"} <= self.keys.keys():
                    self._keys_seen.set()

    def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        if not self._keys_seen.wait(timeout):
            raise RuntimeError("kakin serve printed no owner keys:\n" + "\n".join(self.output) + self._stderr_tail())
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kakin serve exited with {self.proc.returncode}" + self._stderr_tail())
            try:
                if httpx.get(f"{self.url}/openapi.json", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"kakin serve did not answer on {self.url} within {timeout:g} s" + self._stderr_tail())

    def _stderr_tail(self, lines: int = 30) -> str:
        self._stderr.flush()
        text = self.stderr_path.read_text(errors="replace").splitlines()
        return ("\n--- server stderr ---\n" + "\n".join(text[-lines:])) if text else ""

    def unhandled_errors(self) -> int:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace").count("unhandled error")

    def __exit__(self, *_: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # uvicorn shuts down gracefully on SIGTERM
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@dataclass
class Request:
    kind: str  # READS or WRITE label
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class Result:
    kind: str
    latency: float  # seconds, from when it was due to when the response was read
    lag: float  # seconds the client started it late
    status: int | None  # None: no response (timeout, connection error)
    error: str = ""


async def create_customers(client: httpx.AsyncClient, n: int) -> dict[str, str]:
    """N NipoPlus customers with a card, subscribed to GOLD with 10 seats; returns customer id -> super admin id."""
    admins = {}
    for i in range(n):
        r = await client.post("/v1/customers", json={
            "id": f"load-{i:03d}", "name": f"負荷試験 {i}", "payment_method": "pm_card_visa",
            "super_admin": {"email": f"admin{i}@load.example", "name": "管理者"}})
        r.raise_for_status()
        cid, admin = r.json()["id"], r.json()["super_admin"]["id"]
        r = await client.post(f"/v1/customers/{cid}/subscription", json={"plan": "gold", "seats": 10},
                              headers={"Kakin-Acting-Member": admin})
        r.raise_for_status()
        admins[cid] = admin
    return admins


def mixed_requests(n: int, admins: dict[str, str], write_share: float, seed: int) -> list[Request]:
    rng = random.Random(seed)
    ids = list(admins)
    out = []
    for _ in range(n):
        if rng.random() < write_share:
            cid = rng.choice(ids)
            out.append(Request(WRITE, "POST", f"/v1/customers/{cid}/subscription/seats",
                               {"Kakin-Acting-Member": admins[cid]}, {"seats": rng.randint(5, 60)}))
            continue
        kind = rng.choice(READS)
        path = kind.split(" ", 1)[1].replace("{id}", rng.choice(ids))
        out.append(Request(kind, "GET", path))
    return out


async def one(client: httpx.AsyncClient, slots: asyncio.Semaphore, req: Request, due: float,
              loop: asyncio.AbstractEventLoop) -> Result:
    lag = loop.time() - due
    # Requests beyond the connection limit wait here, in order, and that wait counts in their latency. Left to wait in
    # httpx's pool instead, thousands of them would make the client burn the CPU the server needs (the pool scans its
    # queue on every release), and a saturated server would look far worse than it is.
    async with slots:
        try:
            r = await client.request(req.method, req.path, headers=req.headers, json=req.body)
            await r.aread()
            status, error = r.status_code, ("" if r.status_code < 400 else _error_code(r))
        except httpx.HTTPError as exc:
            status, error = None, type(exc).__name__
    return Result(req.kind, loop.time() - due, lag, status, error)


def _error_code(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["code"])
    except Exception:  # noqa: BLE001 - any body at all
        return r.text[:60]


async def open_loop(client: httpx.AsyncClient, requests: list[Request], rate: float,
                    in_flight: int) -> tuple[list[Result], float]:
    """Send requests[i] at start + i/rate, never waiting for earlier ones; returns the results and the wall time."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(in_flight)
    start = loop.time() + 0.05
    tasks = []
    for i, req in enumerate(requests):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(client, slots, req, due, loop)))
    results = await asyncio.gather(*tasks)
    return list(results), loop.time() - start


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return 1000 * ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def row(name: str, results: list[Result], wall: float) -> str:
    lat = [r.latency for r in results]
    ok = sum(1 for r in results if r.status is not None and r.status < 400)
    return (f"{name:<48} {len(results):>6} {ok:>6} {len(results) - ok:>6} {len(results) / wall:>9.1f} "
            f"{pct(lat, .50):>7.1f} {pct(lat, .90):>7.1f} {pct(lat, .99):>7.1f} {1000 * max(lat, default=0):>7.1f}")


HEADER = (f"{'':<48} {'sent':>6} {'ok':>6} {'errors':>6} {'done/s':>9} "
          f"{'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}")


def report_errors(results: list[Result]) -> list[str]:
    counts = Counter((r.kind, r.status, r.error) for r in results if r.status is None or r.status >= 400)
    return [f"  {n:>6} × {kind}: {status or 'no response'} {error}" for (kind, status, error), n in counts.most_common()]


async def benchmark(server: Server, args: argparse.Namespace) -> bool:
    limits = httpx.Limits(max_connections=args.max_connections, max_keepalive_connections=args.max_connections)
    headers = {"Authorization": f"Bearer {server.keys['nipoplus']}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits, timeout=args.timeout) as client:
        admins = await create_customers(client, args.customers)
        # warm up: every kind of request a few times, sequentially (imports, caches, the generated OpenAPI document)
        for req in mixed_requests(100, admins, args.write_share, args.seed + 1):
            await client.request(req.method, req.path, headers=req.headers, json=req.body)
        for _ in range(20):
            await client.get("/openapi.json")

        async def phase(requests: list[Request]) -> Phase:
            server_before, client_before = cpu_seconds(server.pid), cpu_seconds()
            results, wall = await open_loop(client, requests, args.rate, args.max_connections)
            server_after, client_after = cpu_seconds(server.pid), cpu_seconds()
            server_cpu = None if server_before is None or server_after is None else server_after - server_before
            return Phase(results, wall, server_cpu, (client_after or 0) - (client_before or 0))

        baseline = await phase([Request("GET /openapi.json", "GET", "/openapi.json")]
                               * int(args.rate * args.baseline_seconds))
        main = await phase(mixed_requests(int(args.rate * args.seconds), admins, args.write_share, args.seed))
    base, base_wall, mixed, wall = baseline.results, baseline.wall, main.results, main.wall

    by_kind: dict[str, list[Result]] = defaultdict(list)
    for r in mixed:
        by_kind[r.kind].append(r)
    reads = [r for r in mixed if r.kind != WRITE]
    print(f"kakin API load: open loop at {args.rate:g} req/s, {args.seconds:g} s mixed "
          f"({1 - args.write_share:.0%} reads, {args.write_share:.0%} writes) after a {args.baseline_seconds:g} s baseline")
    print(f"server: kakin serve (uvicorn, 1 process) on {server.url}, {server.database} (WAL); "
          f"{args.customers} NipoPlus GOLD customers + the demo tenants")
    print(f"client: httpx.AsyncClient, up to {args.max_connections} connections, same machine "
          f"({os.cpu_count()} CPUs, Python {platform.python_version()}); latency counted from when a request was due")
    print()
    print(HEADER)
    print(row("baseline: GET /openapi.json (no database)", base, base_wall))
    print(row("mixed: all", mixed, wall))
    print(row("  reads", reads, wall))
    print(row("  writes", by_kind[WRITE], wall))
    for kind in [*READS, WRITE]:
        print(row(f"    {kind}", by_kind[kind], wall))
    for name, ph in (("baseline", baseline), ("mixed", main)):
        server_cpu = "unknown" if ph.server_cpu is None else (
            f"{100 * ph.server_cpu / ph.wall:.0f}% of a CPU, {1000 * ph.server_cpu / len(ph.results):.1f} ms per request")
        print(f"CPU during {name}: server {server_cpu}; client {100 * ph.client_cpu / ph.wall:.0f}% of a CPU")
    late = [r.lag for r in base + mixed]
    print(f"client start lag (request sent later than due): p99 {pct(late, .99):.1f} ms, max {1000 * max(late):.1f} ms")
    errors = report_errors(base + mixed)
    print("errors: " + ("none" if not errors else ""))
    for line in errors:
        print(line)
    crashes = server.unhandled_errors()
    if crashes:
        print(f"server logged {crashes} unhandled error(s); last lines of its stderr:{server._stderr_tail()}")

    p99 = pct([r.latency for r in mixed], .99)
    achieved = len(mixed) / wall
    failed = sum(1 for r in mixed if r.status is None or r.status >= 400)
    met = p99 < args.target_p99 and achieved >= 0.95 * args.rate and not failed
    print(f"\ntarget p99 < {args.target_p99:g} ms at {args.rate:g} req/s on SQLite, no errors: {'met' if met else 'NOT met'} "
          f"(p99 {p99:.1f} ms at {achieved:.1f} req/s, {failed} errors; baseline p99 "
          f"{pct([r.latency for r in base], .99):.1f} ms)")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the mixed phase (default 20)")
    parser.add_argument("--baseline-seconds", type=float, help="length of the /openapi.json baseline (default: --seconds)")
    parser.add_argument("--write-share", type=float, default=0.2, help="share of seat-change writes (default 0.2)")
    parser.add_argument("--customers", type=int, default=8, help="NipoPlus customers created for the load (default 8)")
    parser.add_argument("--max-connections", type=int, default=64, help="requests in flight at most (default 64)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds (default 10)")
    parser.add_argument("--target-p99", type=float, default=50.0, help="target p99 in ms (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the request mix (default 1)")
    args = parser.parse_args()
    if args.baseline_seconds is None:
        args.baseline_seconds = args.seconds
    if args.rate <= 0 or args.seconds <= 0 or args.baseline_seconds <= 0 or not 0 <= args.write_share <= 1:
        parser.error("--rate and --seconds must be positive and --write-share between 0 and 1")
    with tempfile.TemporaryDirectory(prefix="kakin-load-") as tmp, Server(Path(tmp)) as server:
        server.wait_ready()
        asyncio.run(benchmark(server, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
