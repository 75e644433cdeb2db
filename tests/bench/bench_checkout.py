"""Checkout on SQLite: latency, throughput and SQL statements per checkout (issue 2).

A script, not a test (pytest does not collect it: no ``test_`` prefix)::

    .venv/bin/python tests/bench/bench_checkout.py [--checkouts N] [--concurrency C]
                                                  [--out docs/BENCHMARKS.md]

What it does:

1. starts ``niaga serve`` on a free loopback port with a fresh SQLite file and
   the demo data, and waits until ``GET /markets`` answers;
2. setup (untimed, over HTTP): raises stock at the DE warehouse, then prepares
   carts with 3 lines (3 SKUs), an address and a ship delivery option;
3. phase A: N sequential checkouts over one keep-alive connection (p50/p90/p99/max);
4. phase B: another 2·N carts checked out by C client threads, each with its own
   keep-alive connection (checkouts/s);
5. the floor in the same run: ``GET /markets`` sequential p50 and throughput
   with the same C threads;
6. SQL statements per checkout, in a separate in-process run (no server) built
   the way ``niaga serve`` builds the app, with Litestar's ``TestClient``;
7. writes the "Checkout on SQLite (issue 2)" section of ``docs/BENCHMARKS.md``
   (only that section, between markers) and prints a summary.

Every checkout must answer 201; anything else is counted as an error, and the
first bodies are printed and written to the report. ``--profile K`` adds a
cProfile of K in-process checkouts (top functions by own time).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARKET = "DE"
CHANNEL = "web"
WAREHOUSE = "de-lej-wh"
SKUS = ["BATIK-SHIRT-L", "SARONG-TENUN", "COFFEE-GAYO-250"]
ADDRESS = {"country": "DE", "region": "Berlin", "city": "Berlin", "postal_code": "10178",
           "line1": "Rosenthaler Straße 40", "name": "Bench Mark", "email": "bench@example.com"}
PAYMENT = {"payment": {"method": "testpay", "token": "tok_ok"}}
PAYMENT_BODY = json.dumps(PAYMENT).encode()
JSON = {"Content-Type": "application/json"}
WARMUP_CHECKOUTS = 20
WARMUP_GETS = 100
FLOOR_THROUGHPUT_REQUESTS = 3000

TARGET_P50_MS = 15.0
TARGET_STATEMENTS = 15
TARGET_RATE = 150.0

START = "<!-- bench:checkout-sqlite:start -->"
END = "<!-- bench:checkout-sqlite:end -->"


def say(*parts: Any) -> None:
    print("[bench]", *parts, flush=True)


# -- HTTP client --------------------------------------------------------------------------


class Client:
    """One keep-alive connection; reconnects after a transport error."""

    def __init__(self, port: int, admin_token: str | None = None):
        self.port = port
        self.admin = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        hdrs = dict(JSON) if data is not None else {}
        hdrs.update(headers or {})
        try:
            self.conn.request(method, path, body=data, headers=hdrs)
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            raise

    def json(self, method: str, path: str, body: Any = None, expect: int = 200,
             admin: bool = False) -> Any:
        status, raw = self.request(method, path, body, self.admin if admin else None)
        if status != expect:
            raise RuntimeError(f"{method} {path} -> {status} (expected {expect}): "
                               f"{raw[:800].decode(errors='replace')}")
        return json.loads(raw) if raw else None

    def connect(self) -> None:
        self.conn.connect()

    def close(self) -> None:
        self.conn.close()


def prepare_cart(c: Client) -> str:
    """A DE cart with 3 lines (3 SKUs), an address and a ship delivery option."""
    cart = c.json("POST", "/carts", {"market": MARKET, "channel": CHANNEL}, expect=201)
    cid = cart["id"]
    for sku in SKUS:
        c.json("POST", f"/carts/{cid}/lines", {"sku": sku, "quantity": 1})
    c.json("PUT", f"/carts/{cid}/address", ADDRESS)
    options = c.json("GET", f"/carts/{cid}/delivery-options")
    ship = next((o for o in options if o["kind"] == "ship"), None)
    if ship is None:
        raise RuntimeError(f"no ship option for cart {cid}: {options}")
    cart = c.json("PUT", f"/carts/{cid}/delivery", {"option_id": ship["id"]})
    if len(cart["lines"]) != 3 or cart["delivery"] is None:
        raise RuntimeError(f"cart {cid} not ready: {cart}")
    return cid


def prepare_carts(port: int, count: int, threads: int, label: str) -> list[str]:
    ids: list[str] = []
    lock = threading.Lock()
    failures: list[BaseException] = []
    step = max(count // 6, 1)

    def work(share: int) -> None:
        c = Client(port)
        try:
            for _ in range(share):
                cid = prepare_cart(c)
                with lock:
                    ids.append(cid)
                    if len(ids) % step == 0 or len(ids) == count:
                        say(f"setup {label}: {len(ids)}/{count} carts")
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            c.close()

    shares = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=work, args=(s,)) for s in shares if s]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        raise RuntimeError(f"cart setup failed: {failures[0]}") from failures[0]
    return ids


# -- measurements ---------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {"p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99),
            "max": ms[-1] if ms else float("nan"), "n": len(ms)}


class Errors:
    def __init__(self) -> None:
        self.count = 0
        self.samples: list[str] = []
        self.lock = threading.Lock()

    def add(self, what: str) -> None:
        with self.lock:
            self.count += 1
            if len(self.samples) < 5:
                self.samples.append(what)


def checkout_once(c: Client, cid: str, errors: Errors) -> None:
    key = f"bench-{cid}-{secrets.token_hex(8)}"
    try:
        status, raw = c.request("POST", f"/carts/{cid}/checkout", PAYMENT_BODY,
                                {"Idempotency-Key": key})
    except (OSError, http.client.HTTPException) as exc:
        errors.add(f"cart {cid}: transport error {exc!r}")
        return
    if status != 201:
        errors.add(f"cart {cid}: HTTP {status}: {raw[:1500].decode(errors='replace')}")


def get_markets_once(c: Client, errors: Errors) -> None:
    try:
        status, raw = c.request("GET", "/markets")
    except (OSError, http.client.HTTPException) as exc:
        errors.add(f"GET /markets: transport error {exc!r}")
        return
    if status != 200:
        errors.add(f"GET /markets: HTTP {status}: {raw[:500].decode(errors='replace')}")


def sequential(port: int, items: list[Any], call: Callable[[Client, Any, Errors], None]
               ) -> tuple[list[float], Errors]:
    errors = Errors()
    samples: list[float] = []
    c = Client(port)
    c.connect()
    try:
        clock = time.perf_counter
        for item in items:
            t0 = clock()
            call(c, item, errors)
            samples.append(clock() - t0)
    finally:
        c.close()
    return samples, errors


def concurrent(port: int, items: list[Any], threads: int,
               call: Callable[[Client, Any, Errors], None]) -> tuple[float, Errors]:
    """Each thread takes its slice; returns (wall seconds from a common start, errors)."""
    errors = Errors()
    slices = [items[i::threads] for i in range(threads)]
    clients = [Client(port) for _ in range(threads)]
    for c in clients:
        c.connect()
    barrier = threading.Barrier(threads + 1)
    done: list[float] = []

    def work(c: Client, share: list[Any]) -> None:
        barrier.wait()
        for item in share:
            call(c, item, errors)
        done.append(time.perf_counter())

    workers = [threading.Thread(target=work, args=(c, s))
               for c, s in zip(clients, slices, strict=True)]
    for w in workers:
        w.start()
    barrier.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    wall = max(done) - t0
    for c in clients:
        c.close()
    return wall, errors


# -- the server -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def niaga_command() -> list[str]:
    script = Path(sys.executable).parent / "niaga"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kernel.cli"]


def wait_ready(proc: subprocess.Popen, port: int, log_path: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"niaga serve exited with {proc.returncode}:\n"
                               + log_path.read_text(errors="replace")[-3000:])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/markets")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"niaga serve did not answer GET /markets within {timeout_s:.0f}s:\n"
                       + log_path.read_text(errors="replace")[-3000:])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (all its threads) so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_ms_per(pid: int, before: float | None, count: int) -> float | None:
    after = cpu_seconds(pid)
    return None if before is None or after is None else (after - before) * 1000 / count


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def server_run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port = free_port()
    token = "adm_bench_" + secrets.token_urlsafe(16)
    log_path = tmp / "server.log"
    cmd = [*niaga_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--db", str(tmp / "bench.sqlite"), "--log-level", "warning"]
    env = {**os.environ, "NIAGA_ADMIN_TOKEN": token}
    n_a, n_b, threads = args.checkouts, args.batch, args.concurrency
    out: dict[str, Any] = {"server_cmd": " ".join(cmd[1:] if cmd[0].endswith("niaga") else cmd)}
    with log_path.open("wb") as log:
        say(f"starting niaga serve on 127.0.0.1:{port} (db {tmp / 'bench.sqlite'})")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            t_start = time.perf_counter()
            wait_ready(proc, port, log_path)
            out["server_pid"] = proc.pid
            say(f"server up in {time.perf_counter() - t_start:.1f}s (pid {proc.pid})")

            admin = Client(port, token)
            total = n_a + n_b + WARMUP_CHECKOUTS
            on_hand = 10 * (total + 100)
            for sku in SKUS:
                level = admin.json("PUT", f"/admin/inventory/{sku}/{WAREHOUSE}",
                                   {"on_hand": on_hand}, admin=True)
                assert level["on_hand"] == on_hand, level
            admin.close()
            say(f"setup: on_hand {on_hand} for {', '.join(SKUS)} at {WAREHOUSE}")

            t_setup = time.perf_counter()
            warm = prepare_carts(port, WARMUP_CHECKOUTS, threads, "warm-up")
            carts_a = prepare_carts(port, n_a, threads, "phase A")
            carts_b = prepare_carts(port, n_b, threads, "phase B")
            out["setup_s"] = time.perf_counter() - t_setup
            say(f"setup done: {total} carts in {out['setup_s']:.1f}s")

            # warm-up (not reported)
            _, werr = sequential(port, warm, checkout_once)
            sequential(port, range(WARMUP_GETS), lambda c, _i, e: get_markets_once(c, e))
            if werr.count:
                say(f"warm-up: {werr.count} checkout error(s); first: {werr.samples[0]}")
            out["warmup_errors"] = werr.count

            say(f"floor: {n_a} sequential GET /markets")
            floor_samples, floor_err = sequential(port, range(n_a),
                                                  lambda c, _i, e: get_markets_once(c, e))
            out["floor_seq"] = summary_ms(floor_samples)
            out["floor_seq_errors"] = floor_err.count

            say(f"phase A: {n_a} sequential checkouts on one keep-alive connection")
            cpu0, client0 = cpu_seconds(proc.pid), time.process_time()
            samples, err_a = sequential(port, carts_a, checkout_once)
            out["a_cpu_ms"] = cpu_ms_per(proc.pid, cpu0, n_a)
            out["a_client_cpu_ms"] = (time.process_time() - client0) * 1000 / n_a
            out["a"] = summary_ms(samples)
            out["a_errors"] = err_a.count
            out["a_error_samples"] = err_a.samples
            a = out["a"]
            say(f"phase A: p50 {a['p50']:.2f} ms, p90 {a['p90']:.2f}, p99 {a['p99']:.2f}, "
                f"max {a['max']:.2f}; errors {err_a.count}")
            for s in err_a.samples:
                say("  error:", s)

            say(f"floor: {FLOOR_THROUGHPUT_REQUESTS} GET /markets on {threads} threads")
            wall, ferr = concurrent(port, list(range(FLOOR_THROUGHPUT_REQUESTS)), threads,
                                    lambda c, _i, e: get_markets_once(c, e))
            out["floor_rate"] = FLOOR_THROUGHPUT_REQUESTS / wall
            out["floor_rate_errors"] = ferr.count
            for err in (floor_err, ferr):
                for sample in err.samples:
                    say("  floor error:", sample)

            say(f"phase B: {n_b} checkouts on {threads} concurrent connections")
            cpu0, client0 = cpu_seconds(proc.pid), time.process_time()
            wall, err_b = concurrent(port, carts_b, threads, checkout_once)
            out["b_cpu_ms"] = cpu_ms_per(proc.pid, cpu0, n_b)
            out["b_client_cpu_ms"] = (time.process_time() - client0) * 1000 / n_b
            out["b_rate"] = n_b / wall
            out["b_wall_s"] = wall
            out["b_errors"] = err_b.count
            out["b_error_samples"] = err_b.samples
            say(f"phase B: {out['b_rate']:.0f} checkouts/s ({n_b} in {wall:.2f}s); "
                f"errors {err_b.count}")
            for s in err_b.samples:
                say("  error:", s)

            # stock adds up: every 201 reserved one unit of each SKU, nothing else did
            placed = total - werr.count - err_a.count - err_b.count
            check = Client(port, token)
            status, raw = check.request("GET",
                                        f"/products/{SKUS[0]}/availability?market={MARKET}")
            check.close()
            wh = next((loc for loc in json.loads(raw)["locations"] if loc["id"] == WAREHOUSE),
                      None) if status == 200 else None
            out["stock_ok"] = wh is not None and wh["available"] == on_hand - placed
            out["stock_note"] = (f"{SKUS[0]} at {WAREHOUSE}: available "
                                 f"{wh['available'] if wh else '?'}, expected "
                                 f"{on_hand} - {placed} placed = {on_hand - placed}")
            say("stock check:", out["stock_note"], "OK" if out["stock_ok"] else "MISMATCH")
        finally:
            stop(proc)
            say(f"server stopped (exit code {proc.returncode})")
    log_text = log_path.read_text(errors="replace")
    if re.search(r"Traceback|ERROR", log_text):
        out["server_log_errors"] = log_text[-3000:]
        say("server log has errors:\n" + log_text[-3000:])
    return out


# -- SQL statements per checkout (in process) -------------------------------------------


class StatementLog:
    """Wraps the pooled engine's statement paths (outside a transaction, inside one, and
    Piccolo's BEGIN/COMMIT) to keep the SQL text and the store method that sent it."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str]] = []  # (sql, store method, origin)
        self.recording = False

    @staticmethod
    def _caller() -> tuple[str, str]:
        frame = sys._getframe(2)
        store_fn, origin = "?", "request"
        while frame is not None:
            name = frame.f_code.co_filename.replace("\\", "/")
            if store_fn == "?" and name.endswith("kernel/store/sql.py"):
                store_fn = frame.f_code.co_name
            if name.endswith("kernel/services/events.py"):
                origin = "outbox relay"
            elif name.endswith("kernel/services/orders.py") and frame.f_code.co_name == "sweep":
                origin = "sweeper"
            frame = frame.f_back
        return store_fn, origin

    def install(self) -> None:
        from kernel.store import sqlite_engine as se

        log = self
        original_execute = se._Borrowed.execute
        original_new = se.PooledSQLiteEngine._run_in_new_connection
        original_existing = se.PooledSQLiteEngine._run_in_existing_connection

        def execute(self_: Any, sql: str, parameters: Any = None) -> Any:
            if log.recording:
                log.entries.append((sql, *log._caller()))
            return original_execute(self_, sql, parameters)

        async def run_new(self_: Any, query: str, args: list[Any] | None = None,
                          query_type: str = "generic", table: Any = None) -> Any:
            if log.recording:
                log.entries.append((query, *log._caller()))
            return await original_new(self_, query, args, query_type, table)

        async def run_existing(self_: Any, connection: Any, query: str,
                               args: list[Any] | None = None, query_type: str = "generic",
                               table: Any = None) -> Any:
            if log.recording:
                log.entries.append((query, *log._caller()))
            return await original_existing(self_, connection, query, args, query_type, table)

        se._Borrowed.execute = execute  # type: ignore[method-assign]
        se.PooledSQLiteEngine._run_in_new_connection = run_new  # type: ignore[method-assign]
        se.PooledSQLiteEngine._run_in_existing_connection = (  # type: ignore[method-assign]
            run_existing)


def short_sql(sql: str) -> str:
    sql = " ".join(sql.split())
    m = re.match(r'(?i)(BEGIN\s*\w*|COMMIT|ROLLBACK|SAVEPOINT \w+|RELEASE \w+'
                 r'|SELECT .*? FROM "?(\w+)"?|INSERT INTO "?(\w+)"?|UPDATE "?(\w+)"?'
                 r'|DELETE FROM "?(\w+)"?)', sql)
    if not m:
        return sql[:60]
    text = m.group(1)
    if text.upper().startswith("SELECT"):
        text = f"SELECT … FROM {m.group(2)}"
        if " WHERE " in sql.upper():
            text += " WHERE …"
    elif " RETURNING " in sql.upper():
        text += " … RETURNING"
    return text


def kind_of(sql: str) -> str:
    head = sql.lstrip().split(None, 1)[0].upper()
    return "tx" if head in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE") else "data"


def inprocess_statements(tmp: Path, profile_n: int) -> dict[str, Any]:
    """Build the app as ``niaga serve`` does and count statements around single calls."""
    log = StatementLog()
    log.install()
    import logging

    from litestar.testing import TestClient

    from kernel.api.app import create_app
    from kernel.cli import build, prepare

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
    db = str(tmp / "inprocess.sqlite")
    token = "adm_bench_inprocess"
    asyncio.run(prepare(db, None, True))
    niaga = build(db, None)
    app = create_app(niaga, admin_token=token, sweep_every_s=30.0)
    engine = niaga.store.engine
    admin = {"Authorization": f"Bearer {token}"}
    out: dict[str, Any] = {}

    def measure(name: str, call: Callable[[], Any], settle_s: float = 0.3) -> Any:
        time.sleep(settle_s)  # let background work of the previous call finish
        log.entries.clear()
        log.recording = True
        before = engine.statements
        result = call()
        time.sleep(settle_s)  # the outbox relay runs after the response
        settled = engine.statements
        log.recording = False
        entries = list(log.entries)
        req = [e for e in entries if e[2] == "request"]
        if settled - before != len(entries):
            say(f"warning: {name}: engine.statements moved by {settled - before} but "
                f"{len(entries)} statements were logged")
        out[name] = {
            "counter": len(req),  # sent while serving the request
            "counter_total": settled - before,  # plus background work it triggered
            "tx": sum(1 for e in req if kind_of(e[0]) == "tx"),
            "data": sum(1 for e in req if kind_of(e[0]) == "data"),
            "background": [(o, short_sql(s), fn) for s, fn, o in entries if o != "request"],
            "list": [(short_sql(s), fn) for s, fn, _o in req],
        }
        return result

    with TestClient(app) as client:
        for sku in SKUS:
            r = client.put(f"/admin/inventory/{sku}/{WAREHOUSE}", json={"on_hand": 100000},
                           headers=admin)
            assert r.status_code == 200, r.text
        time.sleep(0.3)
        cid = client.post("/carts", json={"market": MARKET, "channel": CHANNEL}).json()["id"]
        client.post(f"/carts/{cid}/lines", json={"sku": SKUS[0], "quantity": 1})
        client.post(f"/carts/{cid}/lines", json={"sku": SKUS[1], "quantity": 1})
        r = measure("add_line", lambda: client.post(f"/carts/{cid}/lines",
                                                    json={"sku": SKUS[2], "quantity": 1}))
        assert r.status_code == 200, r.text
        client.put(f"/carts/{cid}/address", json=ADDRESS)
        options = client.get(f"/carts/{cid}/delivery-options").json()
        ship = next(o for o in options if o["kind"] == "ship")
        client.put(f"/carts/{cid}/delivery", json={"option_id": ship["id"]})
        r = measure("cart_read", lambda: client.get(f"/carts/{cid}"))
        assert r.status_code == 200 and len(r.json()["lines"]) == 3, r.text
        r = measure("checkout", lambda: client.post(
            f"/carts/{cid}/checkout", json=PAYMENT, headers={"Idempotency-Key": "k-" + cid}))
        out["checkout_status"] = r.status_code
        out["checkout_body"] = r.text[:1500] if r.status_code != 201 else None
        if r.status_code == 201:
            out["order_status"] = r.json()["status"]
        r = measure("markets", lambda: client.get("/markets"))

        if profile_n:
            out["profile"] = profile_checkouts(client, profile_n)
    return out


def profile_checkouts(client: Any, n: int) -> str:
    """cProfile the app's thread (TestClient runs the app on a portal thread)."""
    import cProfile
    import io
    import pstats

    carts = []
    for _ in range(n):
        cid = client.post("/carts", json={"market": MARKET, "channel": CHANNEL}).json()["id"]
        for sku in SKUS:
            client.post(f"/carts/{cid}/lines", json={"sku": sku, "quantity": 1})
        client.put(f"/carts/{cid}/address", json=ADDRESS)
        ship = next(o for o in client.get(f"/carts/{cid}/delivery-options").json()
                    if o["kind"] == "ship")
        client.put(f"/carts/{cid}/delivery", json={"option_id": ship["id"]})
        carts.append(cid)
    # the app runs on the TestClient's portal thread: switch the profiler on there
    prof = cProfile.Profile()
    with client.portal() as portal:
        portal.call(_run_sync, prof.enable)
        t0 = time.perf_counter()
        for cid in carts:
            r = client.post(f"/carts/{cid}/checkout", json=PAYMENT,
                            headers={"Idempotency-Key": "p-" + cid})
            assert r.status_code == 201, r.text
        wall = time.perf_counter() - t0
        portal.call(_run_sync, prof.disable)
    buf = io.StringIO()
    buf.write(f"{n} checkouts in process: {wall / n * 1000:.2f} ms each (TestClient)\n")
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return buf.getvalue()


async def _run_sync(fn: Callable[[], None]) -> None:
    fn()


# -- the report -----------------------------------------------------------------------


def fmt_list(entries: list[tuple[str, str]]) -> list[str]:
    return [f"{i}. `{sql}` — `{fn}`" for i, (sql, fn) in enumerate(entries, 1)]


def met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(args: argparse.Namespace, srv: dict[str, Any], sql: dict[str, Any],
           command: str, when: str, load: str) -> str:
    a, fl = srv["a"], srv["floor_seq"]
    co = sql["checkout"]
    errors = srv["a_errors"] + srv["b_errors"]
    ratio_p50 = a["p50"] / fl["p50"]
    ratio_rate = srv["floor_rate"] / srv["b_rate"]
    lines = [
        START,
        "## Checkout on SQLite (issue 2)",
        "",
        f"Measured {when} by `tests/bench/bench_checkout.py`:",
        "",
        "```",
        command,
        "```",
        "",
        f"- machine: `os.cpu_count()` = {os.cpu_count()}, load average at start {load}; "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"SQLite {sqlite_version()}, {platform.system()} {platform.machine()}",
        "- server: `niaga serve --db <tmp>/bench.sqlite` (1 uvicorn worker, demo data, "
        "fresh file), client and server on the same machine over loopback; the client is "
        "`http.client` with keep-alive connections",
        f"- each cart: market {MARKET}, 3 lines ({', '.join(SKUS)}), a German address and "
        f"the first ship option; stock raised at `{WAREHOUSE}` first. Payment: testpay "
        "`tok_ok` (captured in process, no network). Setup is over HTTP and untimed; "
        f"{WARMUP_CHECKOUTS} warm-up checkouts are not counted.",
        "",
        "| measure | result |",
        "|---|---|",
        f"| checkout latency, {a['n']} sequential (one connection) | p50 **{a['p50']:.2f} ms**, "
        f"p90 {a['p90']:.2f} ms, p99 {a['p99']:.2f} ms, max {a['max']:.2f} ms |",
        f"| checkout throughput, {args.batch} checkouts on {args.concurrency} connections | "
        f"**{srv['b_rate']:.0f} checkouts/s** ({srv['b_wall_s']:.2f} s) |",
        f"| errors (non-201) | {errors} (phase A {srv['a_errors']}, phase B {srv['b_errors']}) |",
        *([f"| server CPU per checkout (user+sys, all threads) | {srv['a_cpu_ms']:.2f} ms "
           f"sequential, {srv['b_cpu_ms']:.2f} ms concurrent |"]
          if srv.get("a_cpu_ms") is not None else []),
        f"| client CPU per checkout (this script) | {srv['a_client_cpu_ms']:.2f} ms "
        f"sequential, {srv['b_client_cpu_ms']:.2f} ms concurrent |",
        f"| stock after the run | {srv['stock_note']}: "
        f"{'consistent' if srv['stock_ok'] else '**MISMATCH**'} |",
        f"| floor: `GET /markets`, {fl['n']} sequential | p50 {fl['p50']:.2f} ms, "
        f"p90 {fl['p90']:.2f} ms, p99 {fl['p99']:.2f} ms |",
        f"| floor: `GET /markets` on {args.concurrency} connections | "
        f"{srv['floor_rate']:.0f} requests/s |",
        f"| ratio to the floor | checkout p50 = {a['p50']:.2f} ms = **{ratio_p50:.1f}× "
        f"GET /markets p50**; throughput = 1/{ratio_rate:.1f} of GET /markets |",
        f"| SQL statements per checkout | **{co['counter']}** in the request "
        f"({co['tx']} BEGIN/COMMIT + {co['data']} data statements); "
        f"{co['counter_total']} counting the outbox relay it triggers |",
        "",
        "Targets:",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| checkout p50 ≤ {TARGET_P50_MS:g} ms | {a['p50']:.2f} ms | "
        f"{met(a['p50'] <= TARGET_P50_MS)} |",
        f"| ≤ {TARGET_STATEMENTS} SQL statements per checkout | {co['counter']} | "
        f"{met(co['counter'] <= TARGET_STATEMENTS)} |",
        f"| ≥ {TARGET_RATE:g} checkouts/s | {srv['b_rate']:.0f}/s | "
        f"{met(srv['b_rate'] >= TARGET_RATE)} |",
        f"| zero errors | {errors} | {met(errors == 0)} |",
        "",
        "Saleor on this machine: 260–300 ms and about 380 queries for checkoutComplete "
        "(measured by the project, not in this run).",
        "",
        "### SQL statements",
        "",
        "Counted in a separate in-process run (no server): the app built as `niaga serve` "
        "builds it (`kernel.cli.prepare` + `build`, `kernel.api.app.create_app`), driven by "
        "Litestar's `TestClient`; `engine.statements` read before and after one call, and "
        "the engine wrapped (in the script only) to log each statement and the store method "
        "that sent it.",
        "",
        f"One checkout (`POST /carts/{{id}}/checkout`, 3 lines, 1 warehouse): "
        f"**{co['counter']}** statements while serving the request, {co['tx']} of them "
        f"BEGIN/COMMIT (`engine.statements` moved by {co['counter_total']} once the "
        "background work it triggered had finished):",
        "",
        *fmt_list(co["list"]),
        "",
    ]
    if co["background"]:
        lines += [
            "After the response, the outbox relay (`Dispatcher.drain`, a background task "
            f"kicked by the checkout) sends {len(co['background'])} more, not counted above:",
            "",
            *[f"- `{s}` — `{fn}`" for _o, s, fn in co["background"]],
            "",
        ]
    for name, label in (("add_line", "`POST /carts/{id}/lines` (third line)"),
                        ("cart_read", "`GET /carts/{id}` (3 lines)"),
                        ("markets", "`GET /markets`")):
        m = sql[name]
        lines.append(f"For context, {label}: {m['counter']} statements "
                     f"({m['tx']} BEGIN/COMMIT): "
                     + ", ".join(f"`{s}`" for s, _fn in m["list"]) + "." if m["list"] else
                     f"For context, {label}: {m['counter']} statements.")
        lines.append("")
    samples = srv["a_error_samples"] + srv["b_error_samples"]
    if samples:
        lines += ["### Failed checkouts (first responses)", ""]
        lines += [f"- `{s[:600]}`" for s in samples]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if START in text and END in text:
            head, rest = text.split(START, 1)
            _, tail = rest.split(END, 1)
            text = head + section + tail
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        text = "# Benchmarks\n\nNumbers measured by the scripts in `tests/bench/`.\n\n" \
               + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkouts", type=int, default=300,
                        help="phase A sequential checkouts (default 300)")
    parser.add_argument("--batch", type=int, default=None,
                        help="phase B checkouts (default 2 × --checkouts)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="phase B client threads/connections (default 4)")
    parser.add_argument("--out", default=None,
                        help="write the report section to this Markdown file "
                             "(e.g. docs/BENCHMARKS.md)")
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="also cProfile K in-process checkouts and print the top costs")
    args = parser.parse_args(argv)
    args.batch = args.batch or 2 * args.checkouts
    if args.checkouts < 1 or args.concurrency < 1:
        parser.error("--checkouts and --concurrency must be positive")

    argv_shown = argv if argv is not None else sys.argv[1:]
    command = ".venv/bin/python tests/bench/bench_checkout.py " + " ".join(argv_shown)
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    say(f"{when}; cpu_count {os.cpu_count()}; load {load}; Python {platform.python_version()}")
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="niaga-bench-"))
    try:
        srv = server_run(args, tmp)
        say("SQL statements: in-process run (TestClient)")
        sql = inprocess_statements(tmp, args.profile)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    a, fl, co = srv["a"], srv["floor_seq"], sql["checkout"]
    errors = srv["a_errors"] + srv["b_errors"]
    print()
    print("=== Checkout on SQLite (issue 2) ===")
    print(f"checkout latency ({a['n']} sequential): p50 {a['p50']:.2f} ms  p90 {a['p90']:.2f} ms"
          f"  p99 {a['p99']:.2f} ms  max {a['max']:.2f} ms")
    print(f"checkout throughput ({args.batch} on {args.concurrency} connections): "
          f"{srv['b_rate']:.0f}/s")
    print(f"errors: {errors} (A {srv['a_errors']}, B {srv['b_errors']})")
    print(f"floor GET /markets: p50 {fl['p50']:.2f} ms, {srv['floor_rate']:.0f} req/s on "
          f"{args.concurrency} connections")
    if srv["floor_seq_errors"] or srv["floor_rate_errors"]:
        print(f"GET /markets errors: {srv['floor_seq_errors'] + srv['floor_rate_errors']}")
    print(f"ratio: checkout p50 = {a['p50'] / fl['p50']:.1f}x GET /markets p50")
    print(f"SQL per checkout: {co['counter']} in the request ({co['tx']} BEGIN/COMMIT + "
          f"{co['data']} data); + {len(co['background'])} by the outbox relay after it "
          f"(engine.statements moved by {co['counter_total']})")
    for i, (s, fn) in enumerate(co["list"], 1):
        print(f"  {i:2}. {s}  [{fn}]")
    for o, s, fn in co["background"]:
        print(f"   +  {s}  [{fn}, {o}]")
    for name in ("add_line", "cart_read", "markets"):
        print(f"SQL per {name}: {sql[name]['counter']} -> "
              + ", ".join(s for s, _ in sql[name]["list"]))
    if sql.get("checkout_status") != 201:
        print(f"in-process checkout failed: {sql['checkout_status']} {sql['checkout_body']}")
    print(f"targets: p50 <= {TARGET_P50_MS:g} ms "
          f"{'met' if a['p50'] <= TARGET_P50_MS else 'NOT met'};"
          f" <= {TARGET_STATEMENTS} statements "
          f"{'met' if co['counter'] <= TARGET_STATEMENTS else 'NOT met'};"
          f" >= {TARGET_RATE:g}/s {'met' if srv['b_rate'] >= TARGET_RATE else 'NOT met'};"
          f" zero errors {'met' if errors == 0 else 'NOT met'}")
    if srv.get("a_cpu_ms") is not None:
        print(f"server CPU per checkout: {srv['a_cpu_ms']:.2f} ms (phase A), "
              f"{srv['b_cpu_ms']:.2f} ms (phase B); client CPU "
              f"{srv['a_client_cpu_ms']:.2f} / {srv['b_client_cpu_ms']:.2f} ms")
    print(f"stock check: {srv['stock_note']} -> {'OK' if srv['stock_ok'] else 'MISMATCH'}")
    if sql.get("profile"):
        print()
        print(sql["profile"])
    if args.out:
        out = Path(args.out)
        if not out.is_absolute():
            out = ROOT / out
        write_section(out, render(args, srv, sql, command, when, load))
        say(f"wrote {out}")
    say(f"total {time.perf_counter() - t0:.0f}s")
    return 1 if errors or not srv["stock_ok"] or sql.get("checkout_status") != 201 else 0


if __name__ == "__main__":
    sys.exit(main())
