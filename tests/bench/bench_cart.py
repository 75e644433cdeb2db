"""Cart operations per second on SQLite, and how a checkout's cost grows with cart size,
enabled plugins and markets (issue 6).

A script, not a test::

    .venv/bin/python tests/bench/bench_cart.py [--ops N] [--concurrency C] [--carts R]
                                              [--out docs/BENCHMARKS.md]

1. cart operations: ``niaga serve`` on a fresh SQLite file; add line, change quantity and
   read cart, each N times on C connections, against ``GET /markets`` on C connections.
2. scaling, in process (the app built as ``niaga serve`` builds it, Litestar's
   ``TestClient``): checkout of carts with 1, 10 and 50 lines (50 generated products),
   with 3 vs 10 plugins enabled in the market, and with 4 vs 40 markets in the markets
   file; median time per checkout of R carts and SQL statements per checkout, each
   against ``GET /markets`` in the same app.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
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
    Client,
    Errors,
    StatementLog,
    concurrent,
    free_port,
    get_markets_once,
    kind_of,
    niaga_command,
    say,
    stop,
    wait_ready,
    write_section,
)

START = "<!-- bench:cart:start -->"
END = "<!-- bench:cart:end -->"
SIZES = (1, 10, 50)
# DE ships with 6 plugins (kernel/data/markets.toml); "few" keeps the 3 a checkout needs,
# "many" adds these 4
FEW = ("vat", "testpay", "flat-rate")
EXTRA = '''
[markets.DE.plugins.cod]

[markets.DE.plugins.risk-rules]
max_order_value = "25000"
max_order_value_action = "hold"
velocity = [{ key = "card", max_orders = 1000000, window_hours = 1 }]

[markets.DE.plugins.fx]
base_market = "ID"
rates = { EUR = "0.000058" }

[markets.DE.plugins.local-courier]
price = "6.90"
'''


# -- 1. cart operations over HTTP ----------------------------------------------------------


def cart_ops(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port, token = free_port(), "adm_bench_" + secrets.token_urlsafe(16)
    log_path = tmp / "server.log"
    cmd = [*niaga_command(), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--db", str(tmp / "cart.sqlite"), "--log-level", "warning"]
    n, threads = args.ops, args.concurrency
    out: dict[str, Any] = {}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env={**os.environ, "NIAGA_ADMIN_TOKEN": token},
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            wait_ready(proc, port, log_path)
            admin = Client(port, token)
            for sku in SKUS:
                admin.json("PUT", f"/admin/inventory/{sku}/{WAREHOUSE}",
                           {"on_hand": 10 * n + 1000}, admin=True)
            # one cart per operation for adds (each add grows a cart: keep them small)
            carts = [admin.json("POST", "/carts", {"market": MARKET, "channel": CHANNEL},
                                expect=201)["id"] for _ in range(max(n // 3, threads))]
            admin.close()

            def add(c: Client, i: int, e: Errors) -> None:
                body = {"sku": SKUS[i % 3], "quantity": 1}
                _call(c, e, "POST", f"/carts/{carts[i % len(carts)]}/lines", body)

            lines: dict[str, str] = {}  # filled once the adds have given every cart lines

            def change(c: Client, i: int, e: Errors) -> None:
                cid = carts[i % len(carts)]
                _call(c, e, "PATCH", f"/carts/{cid}/lines/{lines[cid]}", {"quantity": 1 + i % 2})

            def read(c: Client, i: int, e: Errors) -> None:
                _call(c, e, "GET", f"/carts/{carts[i % len(carts)]}")

            def markets(c: Client, _i: int, e: Errors) -> None:
                get_markets_once(c, e)

            for name, call in (("floor", markets), ("add", add), ("change", change),
                               ("read", read)):
                if name == "change":
                    setup = Client(port)
                    lines.update((cid, setup.json("GET", f"/carts/{cid}")["lines"][0]["id"])
                                 for cid in carts)
                    setup.close()
                concurrent(port, list(range(min(n, 100))), threads, call)  # warm-up
                wall, err = concurrent(port, list(range(n)), threads, call)
                out[name] = {"rate": n / wall, "errors": err.count, "samples": err.samples}
                say(f"cart ops: {name}: {n / wall:.0f}/s, errors {err.count}")
        finally:
            stop(proc)
    return out


def _call(c: Client, e: Errors, method: str, path: str, body: Any = None) -> None:
    try:
        status, raw = c.request(method, path, body)
    except OSError as exc:
        e.add(f"{method} {path}: {exc!r}")
        return
    if status != 200:
        e.add(f"{method} {path}: HTTP {status}: {raw[:300].decode(errors='replace')}")


# -- 2. scaling, in process ----------------------------------------------------------------


def markets_file(tmp: Path, name: str, plugins: str, extra_markets: int) -> Path:
    """The demo markets file; DE's plugins as shipped (``demo``), cut to FEW (``few``) or
    extended by EXTRA (``many``); plus copies of DE under other codes."""
    demo = (ROOT / "kernel" / "data" / "markets.toml").read_text(encoding="utf-8")
    de_start = demo.index("[markets.DE]")
    de_end = demo.index("[markets.", demo.index("[markets.DE.plugins.points]") + 1)
    de = demo[de_start:de_end]
    if plugins == "few":
        blocks = re.split(r"(?m)^(?=\[markets\.DE\.plugins\.)", de)
        de = "".join(b for b in blocks if not b.startswith("[markets.DE.plugins.")
                     or b.split(".")[3].split("]")[0] in FEW)
    elif plugins == "many":
        de = de.rstrip() + "\n" + EXTRA
    text = demo[:de_start] + de + "\n" + demo[de_end:]
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for i in range(extra_markets):
        code = "Q" + letters[i] if i < 26 else "R" + letters[i - 26]
        text += "\n" + de.replace("[markets.DE", f"[markets.{code}").replace(
            'name = "Germany"', f'name = "Germany copy {code}"')
    path = tmp / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def scaling_app(tmp: Path, name: str, markets: Path | None, log: StatementLog,
                runs: int, sizes: tuple[int, ...]) -> dict[str, Any]:
    from litestar.testing import TestClient

    from kernel.api.app import create_app
    from kernel.cli import build, prepare
    from kernel.plugins import Registry, build_market_plugins

    db = str(tmp / f"{name}.sqlite")
    mfile = str(markets) if markets else None
    asyncio.run(prepare(db, mfile, True))
    niaga = build(db, mfile)
    plugins = build_market_plugins(niaga.markets, Registry())[MARKET].names
    token = "adm_bench_scaling"
    app = create_app(niaga, admin_token=token, sweep_every_s=None)
    admin = {"Authorization": f"Bearer {token}"}
    out: dict[str, Any] = {"markets": len(niaga.markets), "plugins": list(plugins),
                           "sizes": {}}
    with TestClient(app) as client:
        skus = [f"BENCH-{i:02d}" for i in range(max(sizes))]
        for sku in skus:
            r = client.put(f"/admin/products/{sku}", headers=admin, json={
                "names": {"de-DE": f"Bench {sku}"}, "tax_class": "standard",
                "prices": {MARKET: {"amount": "1.00", "currency": "EUR"}}})
            assert r.status_code == 200, r.text
            r = client.put(f"/admin/inventory/{sku}/{WAREHOUSE}", headers=admin,
                           json={"on_hand": 1_000_000})
            assert r.status_code == 200, r.text
        floor = timed(lambda: client.get("/markets"), 200, 200)
        out["floor_ms"] = statistics.median(floor)
        for size in sizes:
            carts = [cart_with(client, skus[:size]) for _ in range(runs + 3)]
            times, statements, data = [], [], []
            for i, cid in enumerate(carts):
                time.sleep(0.05)  # the previous checkout's outbox relay runs after it
                log.entries.clear()
                log.recording = True
                t0 = time.perf_counter()
                r = client.post(f"/carts/{cid}/checkout", json=PAYMENT,
                                headers={"Idempotency-Key": f"s-{cid}"})
                elapsed = time.perf_counter() - t0
                log.recording = False
                if r.status_code != 201:
                    raise RuntimeError(f"{name}: checkout of {size} lines: {r.status_code} "
                                       f"{r.text[:800]}")
                if i < 3:
                    continue  # warm-up
                req = [e for e in log.entries if e[2] == "request"]
                times.append(elapsed * 1000)
                statements.append(len(req))
                data.append(sum(1 for e in req if kind_of(e[0]) == "data"))
            out["sizes"][size] = {"ms": statistics.median(times),
                                  "statements": statistics.median(statements),
                                  "data": statistics.median(data),
                                  "stock_updates": sum(1 for e in log.entries
                                                       if e[2] == "request" and
                                                       'UPDATE "niaga_stock"' in e[0])}
            say(f"scaling {name}: {size} lines: {out['sizes'][size]['ms']:.2f} ms, "
                f"{out['sizes'][size]['statements']:.0f} statements "
                f"(floor {out['floor_ms']:.2f} ms)")
    return out


def cart_with(client: Any, skus: list[str]) -> str:
    cid = client.post("/carts", json={"market": MARKET, "channel": CHANNEL}).json()["id"]
    for sku in skus:
        r = client.post(f"/carts/{cid}/lines", json={"sku": sku, "quantity": 1})
        assert r.status_code == 200, r.text
    client.put(f"/carts/{cid}/address", json=ADDRESS)
    ship = next(o for o in client.get(f"/carts/{cid}/delivery-options").json()
                if o["kind"] == "ship")
    client.put(f"/carts/{cid}/delivery", json={"option_id": ship["id"]})
    return cid


def timed(call: Callable[[], Any], n: int, warm: int) -> list[float]:
    for _ in range(warm):
        call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


# -- report ------------------------------------------------------------------------------


def render(args: argparse.Namespace, ops: dict[str, Any], sc: dict[str, Any], command: str,
           when: str, load: str) -> str:
    fl = ops["floor"]["rate"]
    s = sc["sizes"]["sizes"]
    one, ten, fifty = s[1], s[10], s[50]
    per_line = (fifty["ms"] - one["ms"]) / 49
    lin = fifty["ms"] / (one["ms"] + 49 * (ten["ms"] - one["ms"]) / 9)
    few, many = sc["few"], sc["many"]
    m4, m40 = sc["m4"], sc["m40"]
    lines = [
        START,
        "## Cart operations and how checkout cost grows (issue 6)",
        "",
        f"Measured {when} by `tests/bench/bench_cart.py`:",
        "",
        "```",
        command,
        "```",
        "",
        f"- machine: `os.cpu_count()` = {os.cpu_count()}, load average at start {load}; "
        f"Python {platform.python_version()}. Absolute numbers drift with the machine's load "
        "(it is shared); compare the ratios, each to a floor measured in the same run.",
        "",
        "### Cart operations per second (SQLite, `niaga serve`, 1 worker)",
        "",
        f"Each operation {args.ops} times on {args.concurrency} keep-alive connections after a "
        "warm-up; carts in market DE with up to 3 lines. Floor: `GET /markets` the same way.",
        "",
        "| operation | requests/s | ÷ floor | errors |",
        "|---|---|---|---|",
        f"| floor: `GET /markets` | {fl:.0f} | 1 | {ops['floor']['errors']} |",
    ]
    for key, label in (("add", "add line: `POST /carts/{id}/lines`"),
                       ("change", "change quantity: `PATCH /carts/{id}/lines/{line_id}`"),
                       ("read", "read cart: `GET /carts/{id}`")):
        o = ops[key]
        lines.append(f"| {label} | **{o['rate']:.0f}** | 1/{fl / o['rate']:.1f} | "
                     f"{o['errors']} |")
    lines += [
        "",
        "### Checkout cost by cart size (in process)",
        "",
        f"The app built as `niaga serve` builds it, on a fresh SQLite file, driven by "
        f"Litestar's `TestClient` in this process; 50 generated products (EUR 1.00, stock "
        f"at `{WAREHOUSE}`); {args.carts} checkouts per size after 3 warm-up ones, median; "
        "statements counted as in the SQLite section (sent while serving the request).",
        "",
        "| lines | time per checkout | ÷ `GET /markets` | SQL statements | of which data | "
        "`UPDATE niaga_stock` |",
        "|---|---|---|---|---|---|",
    ]
    floor_ms = sc["sizes"]["floor_ms"]
    for n in SIZES:
        x = s[n]
        lines.append(f"| {n} | {x['ms']:.2f} ms | {x['ms'] / floor_ms:.0f}× | "
                     f"{x['statements']:.0f} | {x['data']:.0f} | {x['stock_updates']} |")
    grows = fifty["statements"] - one["statements"]
    lines += [
        "",
        f"- per extra line: **{per_line:.3f} ms** ((t50 − t1) / 49); t50 ÷ t1 = "
        f"{fifty['ms'] / one['ms']:.1f} for 50× the lines. t50 ÷ (t1 + 49 × the per-line "
        f"cost seen between 1 and 10 lines) = **{lin:.2f}** (≤ 1: no worse than linear).",
        f"- statements: {one['statements']:.0f} → {ten['statements']:.0f} → "
        f"{fifty['statements']:.0f} (+{grows:.0f} from 1 to 50 lines). "
        + ("Flat: only the number of rows each statement touches grows. "
           if grows == 0 else
           "What grows is one conditional `UPDATE niaga_stock … WHERE on_hand − reserved >= "
           ":q` per stock row reserved (one per line here: "
           f"{one['stock_updates']} → {ten['stock_updates']} → {fifty['stock_updates']}); "
           "everything else (cart, products, stock read, reservation, order, outbox, "
           "BEGIN/COMMIT) is a fixed number of statements whatever the line count. "),
        "",
        "### Enabled plugins and markets (in process, 3-line carts)",
        "",
        f"Generated markets files: the demo one with DE's plugins cut to {len(few['plugins'])} "
        f"(`{'`, `'.join(few['plugins'])}`) or raised to {len(many['plugins'])} "
        f"(`{'`, `'.join(many['plugins'])}`, configured as in the demo file); and the demo "
        f"file ({m4['markets']} markets) against it plus copies of DE under other codes "
        f"({m40['markets']} markets). Checkout in DE, {args.carts} carts each, median.",
        "",
        "| variant | time per checkout | ÷ `GET /markets` | SQL statements |",
        "|---|---|---|---|",
    ]
    for label, x in ((f"{len(few['plugins'])} plugins in DE", few),
                     (f"{len(many['plugins'])} plugins in DE", many),
                     (f"{m4['markets']} markets", m4), (f"{m40['markets']} markets", m40)):
        y = x["sizes"][3]
        lines.append(f"| {label} | {y['ms']:.2f} ms | {y['ms'] / x['floor_ms']:.0f}× | "
                     f"{y['statements']:.0f} |")
    rp = many["sizes"][3]["ms"] / few["sizes"][3]["ms"]
    rm = m40["sizes"][3]["ms"] / m4["sizes"][3]["ms"]
    lines += [
        "",
        f"- {len(many['plugins'])} ÷ {len(few['plugins'])} plugins: **{rp:.2f}** (the extra "
        "plugins answer hooks a checkout calls: payment methods, delivery options, risk, "
        "loyalty).",
        f"- {m40['markets']} ÷ {m4['markets']} markets: **{rm:.2f}** "
        f"({'flat' if rm <= 1.15 else 'NOT flat'}: within 15 %; a checkout touches only its "
        "own market's plugin manager).",
        "",
        END,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1500, help="requests per cart operation")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--carts", type=int, default=25, help="checkouts per scaling variant")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    argv_shown = argv if argv is not None else sys.argv[1:]
    command = ".venv/bin/python tests/bench/bench_cart.py " + " ".join(argv_shown)
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="niaga-bench-cart-"))
    try:
        ops = cart_ops(args, tmp)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        log = StatementLog()
        log.install()
        sc = {
            "sizes": scaling_app(tmp, "sizes", None, log, args.carts, SIZES),
            "few": scaling_app(tmp, "few", markets_file(tmp, "few", "few", 0), log,
                               args.carts, (3,)),
            "many": scaling_app(tmp, "many", markets_file(tmp, "many", "many", 0), log,
                                args.carts, (3,)),
            "m4": scaling_app(tmp, "m4", None, log, args.carts, (3,)),
            "m40": scaling_app(tmp, "m40", markets_file(tmp, "m40", "demo", 36), log,
                               args.carts, (3,)),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    section = render(args, ops, sc, command, when, load)
    print(section)
    if args.out:
        out = Path(args.out)
        write_section(out if out.is_absolute() else ROOT / out, section, START, END)
        say(f"wrote {out}")
    say(f"total {time.perf_counter() - t0:.0f}s")
    errors = sum(ops[k]["errors"] for k in ops)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
