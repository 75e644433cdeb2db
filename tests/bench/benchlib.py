"""Shared parts of the benchmark scripts: an HTTP client, cart setup, timing loops,
``niaga serve`` as a subprocess, the SQL statement log, and writing a report section.

Not a benchmark itself; the scripts next to it import it (run as ``python
tests/bench/bench_*.py``, this folder is on ``sys.path``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import sys
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


def say(*parts: Any) -> None:
    print("[bench]", *parts, flush=True)


def run_context(script: str, argv: list[str] | None) -> tuple[str, str, str]:
    """The command line to print with a section (as run from the repository root), the
    local time and the load average at start, for a benchmark's header."""
    shown = argv if argv is not None else sys.argv[1:]
    command = f".venv/bin/python tests/bench/{script} " + " ".join(shown)
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    return command.rstrip(), when, load


def section_head(start: str, title: str, script: str, when: str, command: str) -> list[str]:
    """The first lines of a report section: its marker, title and the command that ran."""
    return [start, f"## {title}", "", f"Measured {when} by `tests/bench/{script}`:", "",
            "```", command, "```", ""]


def failed_samples(srv: dict[str, Any], heading: str) -> list[str]:
    """The first error responses of a server run (``server_run``), under ``heading``."""
    samples = srv["a_error_samples"] + srv["b_error_samples"]
    if not samples:
        return []
    return [heading, "", *(f"- `{s[:600]}`" for s in samples), ""]


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


def prepare_cart(c: Client, skus: list[str] | None = None) -> str:
    """A DE cart with a line per SKU (default: the 3 of ``SKUS``), an address and a ship
    delivery option."""
    skus = SKUS if skus is None else skus
    cart = c.json("POST", "/carts", {"market": MARKET, "channel": CHANNEL}, expect=201)
    cid = cart["id"]
    for sku in skus:
        c.json("POST", f"/carts/{cid}/lines", {"sku": sku, "quantity": 1})
    c.json("PUT", f"/carts/{cid}/address", ADDRESS)
    options = c.json("GET", f"/carts/{cid}/delivery-options")
    ship = next((o for o in options if o["kind"] == "ship"), None)
    if ship is None:
        raise RuntimeError(f"no ship option for cart {cid}: {options}")
    cart = c.json("PUT", f"/carts/{cid}/delivery", {"option_id": ship["id"]})
    if len(cart["lines"]) != len(skus) or cart["delivery"] is None:
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


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU of a process and its descendants (``--workers N``: uvicorn's worker processes)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    pids, frontier = {pid}, [pid]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier and p not in pids]
        pids.update(kids)
        frontier = kids
    if cpu_seconds(pid) is None:
        return None
    return sum(cpu_seconds(p) or 0.0 for p in pids)  # a process gone meanwhile counts 0


def cpu_ms_per(pid: int, before: float | None, count: int) -> float | None:
    after = tree_cpu_seconds(pid)
    return None if before is None or after is None else (after - before) * 1000 / count


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def server_run(args: argparse.Namespace, tmp: Path, db: str | None = None,
               workers: int = 1) -> dict[str, Any]:
    """Serve ``db`` (default a fresh SQLite file in ``tmp``) with ``workers`` uvicorn
    processes; time N sequential and 2·N concurrent checkouts against ``GET /markets``."""
    db = db or str(tmp / "bench.sqlite")
    port = free_port()
    token = "adm_bench_" + secrets.token_urlsafe(16)
    log_path = tmp / "server.log"
    cmd = [*niaga_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--db", db, "--workers", str(workers), "--log-level", "warning"]
    env = {**os.environ, "NIAGA_ADMIN_TOKEN": token}
    n_a, n_b, threads = args.checkouts, args.batch, args.concurrency
    out: dict[str, Any] = {"server_cmd": " ".join(cmd[1:] if cmd[0].endswith("niaga") else cmd)}
    with log_path.open("wb") as log:
        say(f"starting niaga serve on 127.0.0.1:{port} (db {db}, {workers} worker(s))")
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
            cpu0, client0 = tree_cpu_seconds(proc.pid), time.process_time()
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
            cpu0, client0 = tree_cpu_seconds(proc.pid), time.process_time()
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



def met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"



def write_section(path: Path, section: str, start: str, end: str) -> None:
    """Replace the text between the ``start`` and ``end`` markers (or append it)."""
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if start in text and end in text:
            head, rest = text.split(start, 1)
            _, tail = rest.split(end, 1)
            text = head + section + tail
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        text = "# Benchmarks\n\nNumbers measured by the scripts in `tests/bench/`.\n\n" \
               + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")

