"""Checkout on PostgreSQL with several uvicorn workers: latency and throughput against the
``GET /markets`` floor of the same run (issue 6).

A script, not a test::

    .venv/bin/python tests/bench/bench_postgres.py [--workers 2] [--checkouts N]
        [--concurrency C] [--pg postgresql://postgres@127.0.0.1:5432] [--out docs/BENCHMARKS.md]

Creates a fresh database (``niaga_bench_<pid>_<hex>``), runs ``niaga serve --db <url>
--workers W`` on it with the demo data, drives it exactly like ``bench_checkout.py``
drives SQLite (``benchlib.server_run``: N sequential checkouts, 2·N on C connections, the
floor sequential and on C connections), then drops the database.
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
import uuid
from pathlib import Path
from typing import Any

from benchlib import (
    MARKET,
    ROOT,
    SKUS,
    WAREHOUSE,
    WARMUP_CHECKOUTS,
    failed_samples,
    run_context,
    say,
    section_head,
    server_run,
    write_section,
)

START = "<!-- bench:checkout-postgres:start -->"
END = "<!-- bench:checkout-postgres:end -->"


async def _admin(base: str, sql: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        if sql == "version":
            return str(await conn.fetchval("SHOW server_version"))
        await conn.execute(sql)
        return ""
    finally:
        await conn.close()


def render(args: argparse.Namespace, srv: dict[str, Any], command: str, when: str,
           load: str, pg_version: str) -> str:
    a, fl = srv["a"], srv["floor_seq"]
    errors = srv["a_errors"] + srv["b_errors"]
    lines = [
        *section_head(START, "Checkout on PostgreSQL, several workers (issue 6)",
                      "bench_postgres.py", when, command),
        f"- machine: `os.cpu_count()` = {os.cpu_count()}, load average at start {load}; "
        f"Python {platform.python_version()}, PostgreSQL {pg_version} on 127.0.0.1 "
        "(same machine, shared with the server and the client)",
        f"- server: `niaga serve --db postgresql://…/<fresh database> --workers {args.workers}` "
        "(demo data; the database is created for the run and dropped after it). Each worker "
        "has its own connection pool, outbox relay and sweeper.",
        f"- the same carts and client as the SQLite section (`benchlib.server_run`): market "
        f"{MARKET}, 3 lines ({', '.join(SKUS)}), a German address, the first ship option, "
        f"stock raised at `{WAREHOUSE}`, testpay; {WARMUP_CHECKOUTS} warm-up checkouts not "
        "counted. Absolute numbers drift with the machine's load; the ratios to the floor "
        "of the same run are what to compare.",
        "",
        "| measure | result |",
        "|---|---|",
        f"| checkout latency, {a['n']} sequential (one connection) | p50 **{a['p50']:.2f} ms**, "
        f"p90 {a['p90']:.2f} ms, p99 **{a['p99']:.2f} ms**, max {a['max']:.2f} ms |",
        f"| checkout throughput, {args.batch} checkouts on {args.concurrency} connections | "
        f"**{srv['b_rate']:.0f} checkouts/s** ({srv['b_wall_s']:.2f} s) |",
        f"| errors (non-201) | {errors} |",
        *([f"| server CPU per checkout (all workers, user+sys; PostgreSQL's own not counted) "
           f"| {srv['a_cpu_ms']:.2f} ms sequential, {srv['b_cpu_ms']:.2f} ms concurrent |"]
          if srv.get("a_cpu_ms") is not None else []),
        f"| stock after the run | {srv['stock_note']}: "
        f"{'consistent' if srv['stock_ok'] else '**MISMATCH**'} |",
        f"| floor: `GET /markets`, {fl['n']} sequential | p50 {fl['p50']:.2f} ms, "
        f"p99 {fl['p99']:.2f} ms |",
        f"| floor: `GET /markets` on {args.concurrency} connections | "
        f"{srv['floor_rate']:.0f} requests/s |",
        f"| ratio to the floor | checkout p50 = **{a['p50'] / fl['p50']:.1f}× GET /markets "
        f"p50**, p99 = {a['p99'] / fl['p99']:.1f}× its p99; throughput = "
        f"1/{srv['floor_rate'] / srv['b_rate']:.1f} of GET /markets |",
        "",
    ]
    lines += failed_samples(srv, "Failed checkouts (first responses):")
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--checkouts", type=int, default=200,
                        help="sequential checkouts (default 200)")
    parser.add_argument("--batch", type=int, default=None,
                        help="concurrent checkouts (default 2 × --checkouts)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="client connections for the throughput phase (default 4)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                        help="server URL without a database (trust auth)")
    parser.add_argument("--out", default=None, help="write the section to this Markdown file")
    args = parser.parse_args(argv)
    args.batch = args.batch or 2 * args.checkouts
    if args.workers < 2:
        parser.error("--workers: this benchmark is about several workers (>= 2)")

    command, when, load = run_context("bench_postgres.py", argv)
    say(f"{when}; cpu_count {os.cpu_count()}; load {load}")
    t0 = time.perf_counter()
    base = args.pg.rstrip("/")
    name = f"niaga_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    pg_version = asyncio.run(_admin(base, "version"))
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    say(f"created database {name} (PostgreSQL {pg_version})")
    tmp = Path(tempfile.mkdtemp(prefix="niaga-bench-pg-"))
    try:
        srv = server_run(args, tmp, db=f"{base}/{name}", workers=args.workers)
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        say(f"dropped database {name}")
        shutil.rmtree(tmp, ignore_errors=True)

    a, fl = srv["a"], srv["floor_seq"]
    errors = srv["a_errors"] + srv["b_errors"]
    print()
    print(f"=== Checkout on PostgreSQL, {args.workers} workers ===")
    print(f"checkout ({a['n']} sequential): p50 {a['p50']:.2f} ms  p99 {a['p99']:.2f} ms; "
          f"{srv['b_rate']:.0f}/s on {args.concurrency} connections; errors {errors}")
    print(f"floor GET /markets: p50 {fl['p50']:.2f} ms, {srv['floor_rate']:.0f}/s; "
          f"ratio p50 {a['p50'] / fl['p50']:.1f}x")
    print(f"stock check: {srv['stock_note']} -> {'OK' if srv['stock_ok'] else 'MISMATCH'}")
    if args.out:
        out = Path(args.out)
        out = out if out.is_absolute() else ROOT / out
        write_section(out, render(args, srv, command, when, load, pg_version), START, END)
        say(f"wrote {out}")
    say(f"total {time.perf_counter() - t0:.0f}s")
    return 1 if errors or not srv["stock_ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
