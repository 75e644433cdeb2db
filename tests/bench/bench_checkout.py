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
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import (
    ADDRESS,
    CHANNEL,
    MARKET,
    PAYMENT,
    ROOT,
    SKUS,
    WAREHOUSE,
    WARMUP_CHECKOUTS,
    StatementLog,
    failed_samples,
    kind_of,
    met,
    run_context,  # tests/bench/benchlib.py: shared with the other scripts
    say,
    section_head,
    server_run,
    short_sql,
    write_section,
)

TARGET_P50_MS = 15.0
TARGET_STATEMENTS = 15
TARGET_RATE = 150.0

START = "<!-- bench:checkout-sqlite:start -->"
END = "<!-- bench:checkout-sqlite:end -->"


# -- SQL statements per checkout (in process) -------------------------------------------


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



def render(args: argparse.Namespace, srv: dict[str, Any], sql: dict[str, Any],
           command: str, when: str, load: str) -> str:
    a, fl = srv["a"], srv["floor_seq"]
    co = sql["checkout"]
    errors = srv["a_errors"] + srv["b_errors"]
    ratio_p50 = a["p50"] / fl["p50"]
    ratio_rate = srv["floor_rate"] / srv["b_rate"]
    lines = [
        *section_head(START, "Checkout on SQLite (issue 2)",
                      "bench_checkout.py", when, command),
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
    lines += failed_samples(srv, "### Failed checkouts (first responses)")
    lines.append(END)
    return "\n".join(lines)


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

    command, when, load = run_context("bench_checkout.py", argv)
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
        write_section(out, render(args, srv, sql, command, when, load), START, END)
        say(f"wrote {out}")
    say(f"total {time.perf_counter() - t0:.0f}s")
    return 1 if errors or not srv["stock_ok"] or sql.get("checkout_status") != 201 else 0


if __name__ == "__main__":
    sys.exit(main())
