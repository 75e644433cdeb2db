"""Load: drive ``niaga serve`` at rising concurrency until checkout's p99 passes 250 ms.

    .venv/bin/python tests/load/load.py [--pg [--workers 4]] [--quick] [--out docs/BENCHMARKS.md]

1. starts ``niaga serve`` on a fresh SQLite file (``--pg``: a fresh PostgreSQL database,
   ``--workers`` uvicorn processes) with the demo catalog and the demo markets minus the
   card-velocity rule (every virtual shopper pays with testpay's one ``tok_ok`` card, which
   the rule would refuse after 10 orders an hour);
2. stocks five regular SKUs deeply and adds one scarce SKU (``LOAD-SCARCE``) held at a
   single location, topped up by a few units each step, so shoppers race for the last units;
3. per step (concurrency 1, 2, 4, … ``--max``), for ``--seconds``, each virtual shopper loops:
   browse the catalog, read availability, create a cart, add 1–3 lines (a quarter of carts
   also the scarce SKU), set an address and delivery, and check out with testpay (one cart in
   five is abandoned before checkout). Latency per operation, status codes, requests/s;
4. stops after the first step whose checkout p99 exceeds 250 ms (the knee is the step
   before it) or at the cap;
5. fails on any 5xx or transport error, on oversell (the scarce row must hold exactly the
   units of the orders placed: they are paid, not shipped, so reserved = sold ≤ on_hand),
   and unless ``niaga audit`` on the store afterwards reports no discrepancy;
6. writes the ``bench:load`` section of ``--out``.

asyncio + httpx (already a dependency): the traffic is a scripted journey with checks
between steps (ids from one answer feed the next), which a plain URL hammer cannot do, and
a separate load tool (locust, k6) would add a dependency for no extra figure. One Python
process generates the load: on a small machine it competes with the server for cores; the
figures say how many there were.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
START = "<!-- bench:load:start -->"
END = "<!-- bench:load:end -->"
TOKEN = "adm_load_" + uuid.uuid4().hex
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
MARKET = "ID"
REGULAR = ["TEA-JAVA-BLACK", "COFFEE-GAYO-250", "COFFEE-TORAJA-250", "BATIK-SHIRT-M",
           "SARONG-TENUN"]
SCARCE = "LOAD-SCARCE"
SCARCE_PER_STEP = 12  # units added to the scarce row at each step: always a race for them
P99_LIMIT_MS = 250.0
ADDRESS = {"country": "ID", "region": "DKI Jakarta", "city": "Jakarta", "postal_code": "10110",
           "line1": "Jl. Merdeka No. 1", "name": "Load Shopper"}
OPS = ["browse", "availability", "cart", "add_line", "address", "delivery_options",
       "delivery", "checkout"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def markets_file(tmp: Path) -> Path:
    """The demo markets without the card-velocity rule (see the module docstring)."""
    text = (ROOT / "kernel" / "data" / "markets.toml").read_text(encoding="utf-8")
    path = tmp / "markets.toml"
    path.write_text(re.sub(r"(?m)^velocity = .*$\n", "", text), encoding="utf-8")
    return path


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Step:
    def __init__(self, concurrency: int):
        self.concurrency = concurrency
        self.latency: dict[str, list[float]] = defaultdict(list)  # ms
        self.status: Counter[str] = Counter()
        self.errors: list[str] = []
        self.orders: list[dict[str, Any]] = []
        self.scarce_sold = 0
        self.seconds = 0.0

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latency.values())

    def p(self, op: str, q: float) -> float:
        return pct(self.latency[op], q)


async def call(client: Any, step: Step, op: str, method: str, url: str,
               **kw: Any) -> Any | None:
    began = time.perf_counter()
    try:
        r = await client.request(method, url, **kw)
    except Exception as exc:  # a dropped connection is a failure of the run, not a skip
        step.errors.append(f"{op}: {type(exc).__name__}: {exc}")
        step.status["error"] += 1
        return None
    step.latency[op].append((time.perf_counter() - began) * 1000)
    step.status[str(r.status_code)] += 1
    if r.status_code >= 500:
        step.errors.append(f"{op} {method} {url}: {r.status_code} {r.text[:200]}")
    return r


async def shopper(client: Any, step: Step, until: float, rng: random.Random) -> None:
    while time.perf_counter() < until:
        await call(client, step, "browse", "GET", "/products", params={"market": MARKET})
        sku = rng.choice(REGULAR)
        await call(client, step, "availability", "GET", f"/products/{sku}/availability",
                   params={"market": MARKET})
        r = await call(client, step, "cart", "POST", "/carts",
                       json={"market": MARKET, "channel": rng.choice(["web", "app"])})
        if r is None or r.status_code != 201:
            continue
        cart = r.json()["id"]
        wanted = [(s, rng.randint(1, 2)) for s in rng.sample(REGULAR, rng.randint(1, 3))]
        if rng.random() < 0.25:
            wanted.append((SCARCE, 1))
        for s, q in wanted:  # a 409 (out of stock) is an answer: the shopper goes on
            await call(client, step, "add_line", "POST", f"/carts/{cart}/lines",
                       json={"sku": s, "quantity": q})
        email = f"{uuid.uuid4().hex[:12]}@load.example"
        await call(client, step, "address", "PUT", f"/carts/{cart}/address",
                   json={**ADDRESS, "email": email})
        r = await call(client, step, "delivery_options", "GET",
                       f"/carts/{cart}/delivery-options")
        options = [o for o in (r.json() if r is not None and r.status_code == 200 else [])
                   if o["kind"] == "ship"]
        if not options:
            continue
        await call(client, step, "delivery", "PUT", f"/carts/{cart}/delivery",
                   json={"option_id": options[0]["id"]})
        if rng.random() < 0.2:
            continue  # abandoned
        r = await call(client, step, "checkout", "POST", f"/carts/{cart}/checkout",
                       json={"payment": {"method": "testpay", "token": "tok_ok"}},
                       headers={"Idempotency-Key": uuid.uuid4().hex})
        if r is not None and r.status_code == 201:
            order = r.json()
            step.orders.append({"id": order["id"], "status": order["status"]})
            step.scarce_sold += sum(li["quantity"] for li in order["lines"]
                                    if li["sku"] == SCARCE)


async def setup(client: Any) -> str:
    """Deep stock for the regular SKUs; the scarce SKU at one ID location. Returns it."""
    for sku in REGULAR:
        rows = (await client.get(f"/admin/inventory/{sku}", headers=ADMIN)).json()
        for row in rows:
            r = await client.put(f"/admin/inventory/{sku}/{row['location_id']}",
                                 json={"on_hand": 1_000_000}, headers=ADMIN)
            r.raise_for_status()
    loc = next(row["location_id"] for row in
               (await client.get(f"/admin/inventory/{REGULAR[0]}", headers=ADMIN)).json()
               if row["location_id"].startswith("id-"))
    r = await client.put(f"/admin/products/{SCARCE}", headers=ADMIN, json={
        "names": {"id-ID": "Stok terbatas", "en-US": "Limited stock"},
        "prices": {MARKET: {"amount": "50000.00", "currency": "IDR"}},
        "tax_class": "standard", "weight_grams": 200})
    r.raise_for_status()
    r = await client.put(f"/admin/inventory/{SCARCE}/{loc}", json={"on_hand": 0},
                         headers=ADMIN)
    r.raise_for_status()
    return loc


async def drive(base: str, steps: list[int], seconds: float, say: Any) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=max(steps) + 8, max_keepalive_connections=max(steps))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
        loc = await setup(client)
        stocked = 0
        done: list[Step] = []
        for n in steps:
            r = await client.post(f"/admin/inventory/{SCARCE}/{loc}/adjust", headers=ADMIN,
                                  json={"delta": SCARCE_PER_STEP, "reason": "receipt"})
            r.raise_for_status()
            stocked += SCARCE_PER_STEP
            step = Step(n)
            began = time.perf_counter()
            until = began + seconds
            await asyncio.gather(*(shopper(client, step, until, random.Random(f"{n}:{i}"))
                                   for i in range(n)))
            step.seconds = time.perf_counter() - began
            done.append(step)
            say(line_of(step))
            if step.p("checkout", 0.99) > P99_LIMIT_MS:
                break
        rows = (await client.get(f"/admin/inventory/{SCARCE}", headers=ADMIN)).json()
    return {"steps": done, "scarce_rows": rows, "stocked": stocked, "location": loc}


def line_of(s: Step) -> str:
    ops = "  ".join(f"{op} {s.p(op, .5):.0f}/{s.p(op, .99):.0f}" for op in OPS
                    if s.latency[op])
    codes = " ".join(f"{k}:{v}" for k, v in sorted(s.status.items()))
    return (f"c={s.concurrency:<3} {s.requests / s.seconds:7.1f} req/s  "
            f"{len(s.latency['checkout']) / s.seconds:6.1f} checkouts/s  "
            f"p50/p99 ms: {ops}  [{codes}]")


def start_server(db: str, markets: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "NIAGA_ADMIN_TOKEN": TOKEN}
    cmd = [str(BIN / "niaga"), "serve", "--db", db, "--port", str(port), "--markets",
           str(markets), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"niaga serve exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/markets", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("niaga serve did not answer within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the session we started: server and workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def pg_database(create: bool, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres",
                                 database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"' if create
                           else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def check_stock(result: dict[str, Any]) -> list[str]:
    """Zero oversell: orders are paid and not shipped, so every unit sold is still reserved."""
    sold = sum(s.scarce_sold for s in result["steps"])
    rows = [r for r in result["scarce_rows"] if r["location_id"] == result["location"]]
    if len(rows) != 1:
        return [f"{SCARCE}: expected one row at {result['location']}, got {rows}"]
    row = rows[0]
    problems = []
    if row["on_hand"] != result["stocked"]:
        problems.append(f"{SCARCE} on_hand {row['on_hand']} != {result['stocked']} stocked")
    if row["reserved"] != sold:
        problems.append(f"{SCARCE} reserved {row['reserved']} != {sold} sold in orders")
    if not 0 <= row["reserved"] <= row["on_hand"] or row["available"] < 0:
        problems.append(f"{SCARCE} oversold: {row}")
    return problems


def section(result: dict[str, Any], command: str, store: str, knee: int | None,
            seconds: float, audit_line: str, failures: list[str]) -> str:
    steps: list[Step] = result["steps"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out = [START, "## Load: rising concurrency until checkout p99 passes 250 ms (issue 6)", "",
           f"- command: `{command}` (`make load`)",
           f"- store: {store}; machine: `os.cpu_count()` = {os.cpu_count()}, load average at "
           f"start {load:.2f}; Python {platform.python_version()}; the load generator "
           "(one asyncio process) shares those cores with the server",
           f"- {seconds:.0f} s per step; shopper journey: browse, availability, cart, 1–3 "
           "lines (¼ of carts also the scarce SKU), address, delivery options, delivery, "
           "checkout with testpay (⅕ of carts abandoned)",
           f"- **knee: {knee if knee is not None else 'none'}** concurrent shoppers (the last "
           f"step with checkout p99 ≤ {P99_LIMIT_MS:.0f} ms)", "",
           "| shoppers | req/s | checkouts/s | " + " | ".join(f"{op} p50/p99 ms" for op in OPS)
           + " | status codes |",
           "|---:|---:|---:|" + "---:|" * len(OPS) + "---|"]
    for s in steps:
        cells = [f"{s.p(op, .5):.0f} / {s.p(op, .99):.0f}" if s.latency[op] else "-"
                 for op in OPS]
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(s.status.items()))
        out.append(f"| {s.concurrency} | {s.requests / s.seconds:.1f} | "
                   f"{len(s.latency['checkout']) / s.seconds:.1f} | " + " | ".join(cells)
                   + f" | {codes} |")
    sold = sum(s.scarce_sold for s in steps)
    orders = sum(len(s.orders) for s in steps)
    out += ["", f"- orders placed: {orders}; scarce SKU: {result['stocked']} units stocked at "
            f"`{result['location']}` ({SCARCE_PER_STEP} per step), {sold} sold, none oversold "
            "(409s are shoppers who lost the race)" if not failures else
            f"- orders placed: {orders}; FAILED: " + "; ".join(failures),
            f"- `niaga audit` afterwards: {audit_line}", END]
    return "\n".join(out)


def write_section(path: Path, text: str) -> None:
    body = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if START in body and END in body:
        head, rest = body.split(START, 1)
        body = head + text + rest.split(END, 1)[1]
    else:
        body = body.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", action="store_true", help="PostgreSQL on 127.0.0.1:5432 "
                        "(a fresh database, dropped afterwards) instead of SQLite")
    parser.add_argument("--workers", type=int, default=None,
                        help="uvicorn workers (default: 1 on SQLite, 4 on PostgreSQL)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per step (default 20)")
    parser.add_argument("--max", type=int, default=64, help="cap on concurrency (default 64)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: concurrency 1 and 2, 3 s each")
    parser.add_argument("--out", type=Path, help="write the bench:load section here")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.max = 3.0, 2
    steps = [1]
    while steps[-1] * 2 <= args.max:
        steps.append(steps[-1] * 2)
    workers = args.workers or (4 if args.pg else 1)
    command = "python tests/load/load.py " + shlex.join(a for a in (argv or sys.argv[1:]))
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="niaga-load-") as tmp_dir:
        tmp = Path(tmp_dir)
        markets = markets_file(tmp)
        pg_name = f"niaga_load_{os.getpid()}"
        if args.pg:
            asyncio.run(pg_database(True, pg_name))
            db = f"postgresql://postgres@127.0.0.1:5432/{pg_name}"
            store = f"PostgreSQL, {workers} uvicorn workers"
        else:
            db = str(tmp / "load.sqlite")
            store = f"SQLite file, {workers} uvicorn worker(s)"
        try:
            port = free_port()
            proc = start_server(db, markets, port, workers)
            try:
                print(f"load: {store}; steps {steps}, {args.seconds:.0f} s each", flush=True)
                result = asyncio.run(drive(f"http://127.0.0.1:{port}", steps, args.seconds,
                                           lambda m: print(m, flush=True)))
            finally:
                stop_server(proc)
            audit = subprocess.run([str(BIN / "niaga"), "audit", "--db", db, "--markets",
                                    str(markets)], capture_output=True, text=True)
        finally:
            if args.pg:
                asyncio.run(pg_database(False, pg_name))
    print(audit.stdout, end="")
    failures = []
    errors = [e for s in result["steps"] for e in s.errors]
    if errors:
        failures.append(f"{len(errors)} 5xx/transport errors, first: {errors[0]}")
    failures += check_stock(result)
    if audit.returncode != 0:
        failures.append(f"niaga audit exited {audit.returncode}")
    audit_line = (audit.stdout.splitlines() or ["?"])[0] + (
        ": no discrepancies" if audit.returncode == 0 else ": DISCREPANCIES")
    good = [s for s in result["steps"] if s.p("checkout", 0.99) <= P99_LIMIT_MS]
    knee = good[-1].concurrency if good and good[0] is result["steps"][0] else None
    print(f"load: knee {knee} concurrent shoppers; {time.perf_counter() - began:.0f} s in all")
    if args.out:
        write_section(args.out, section(result, command, store, knee, args.seconds,
                                        audit_line, failures))
    for f in failures:
        print(f"load: FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
