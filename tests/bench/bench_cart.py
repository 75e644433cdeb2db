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
   against ``GET /markets`` in the same app. All variants are open at once and measured
   in turns (a new random order each round), so the machine's drift falls on all alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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
    run_context,
    say,
    section_head,
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


def open_variant(stack: contextlib.ExitStack, tmp: Path, name: str, markets: Path | None,
                 sizes: tuple[int, ...]) -> dict[str, Any]:
    """Build the app as ``niaga serve`` builds it on its own SQLite file and open a
    ``TestClient`` on it (kept open in STACK so that variants can be measured in turns)."""
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
    client = stack.enter_context(TestClient(create_app(niaga, admin_token=token,
                                                       sweep_every_s=None)))
    admin = {"Authorization": f"Bearer {token}"}
    skus = [f"BENCH-{i:02d}" for i in range(max(sizes))]
    for sku in skus:
        r = client.put(f"/admin/products/{sku}", headers=admin, json={
            "names": {"de-DE": f"Bench {sku}"}, "tax_class": "standard",
            "prices": {MARKET: {"amount": "1.00", "currency": "EUR"}}})
        assert r.status_code == 200, r.text
        r = client.put(f"/admin/inventory/{sku}/{WAREHOUSE}", headers=admin,
                       json={"on_hand": 1_000_000})
        assert r.status_code == 200, r.text
    timed(lambda: client.get("/markets"), 0, 100)  # warm the app before the first turn
    return {"name": name, "niaga": niaga, "client": client, "skus": skus, "sizes": sizes,
            "markets": len(niaga.markets), "plugins": list(plugins)}


def scaling(variants: list[dict[str, Any]], log: StatementLog, runs: int,
            warm: int = 3) -> dict[str, dict[str, Any]]:
    """Checkouts of every (variant, size) in turns, in a new random order each round, so
    that the machine's drift (it is shared) falls on all of them alike; each turn also
    samples the variant's own floor (``GET /markets``). The first WARM rounds are dropped."""
    pairs = [(v, size) for v in variants for size in v["sizes"]]
    carts = {(v["name"], size): [cart_with(v["client"], v["skus"][:size])
                                 for _ in range(runs + warm)] for v, size in pairs}
    samples: dict[tuple[str, int], dict[str, list[float]]] = {
        (v["name"], size): {"ms": [], "statements": [], "data": [], "floor": []}
        for v, size in pairs}
    stock_updates: dict[tuple[str, int], int] = {}
    rng = random.Random(6)
    for rnd in range(runs + warm):
        rng.shuffle(pairs)
        for v, size in pairs:
            key, client = (v["name"], size), v["client"]
            floor = timed(lambda c=client: c.get("/markets"), 5, 0)
            cid = carts[key][rnd]
            time.sleep(0.05)  # the previous checkout's outbox relay runs after it
            log.entries.clear()
            log.recording = True
            t0 = time.perf_counter()
            r = client.post(f"/carts/{cid}/checkout", json=PAYMENT,
                            headers={"Idempotency-Key": f"s-{cid}"})
            elapsed = time.perf_counter() - t0
            log.recording = False
            if r.status_code != 201:
                raise RuntimeError(f"{key}: checkout: {r.status_code} {r.text[:800]}")
            if rnd < warm:
                continue
            req = [e for e in log.entries if e[2] == "request"]
            s = samples[key]
            s["ms"].append(elapsed * 1000)
            s["floor"].append(statistics.median(floor))
            s["statements"].append(len(req))
            s["data"].append(sum(1 for e in req if kind_of(e[0]) == "data"))
            stock_updates[key] = sum(1 for e in req if 'UPDATE "niaga_stock"' in e[0])
    out: dict[str, dict[str, Any]] = {}
    for v in variants:
        res = out[v["name"]] = {"markets": v["markets"], "plugins": v["plugins"], "sizes": {}}
        for size in v["sizes"]:
            s = samples[(v["name"], size)]
            res["sizes"][size] = {k: statistics.median(s[k])
                                  for k in ("ms", "statements", "data", "floor")}
            res["sizes"][size]["stock_updates"] = stock_updates[(v["name"], size)]
            say(f"scaling {v['name']}: {size} lines: {res['sizes'][size]['ms']:.2f} ms, "
                f"{res['sizes'][size]['statements']:.0f} statements "
                f"(floor {res['sizes'][size]['floor']:.2f} ms)")
        res["floor_ms"] = statistics.median(
            [res["sizes"][size]["floor"] for size in v["sizes"]])
    return out


def count_calls(tmp: Path, name: str, markets: Path | None,
                sizes: tuple[int, ...]) -> dict[int, int]:
    """Python function calls made while serving one checkout of each size: a count, not a
    time, so it repeats (to a few calls of event-loop scheduling) whatever else the machine
    does. The profile hook is set only for the threads the app starts (the TestClient's
    portal, the SQLite connection) and only in this pass, so it never slows the timed runs.
    The outbox relay, which runs in the background after the response, is switched off
    here so that its timing cannot leak into the count."""
    calls = [0]
    counting = [False]

    def hook(_frame: Any, event: str, _arg: Any) -> None:
        if event == "call" and counting[0]:
            calls[0] += 1

    out: dict[int, int] = {}
    with contextlib.ExitStack() as stack:
        threading.setprofile(hook)  # inherited by the portal thread the TestClient starts
        try:
            v = open_variant(stack, tmp, f"calls-{name}", markets, sizes)
        finally:
            threading.setprofile(None)  # type: ignore[arg-type]
        client = v["client"]
        v["niaga"].dispatcher.in_process = False
        for size in sizes:
            carts = [cart_with(client, v["skus"][:size]) for _ in range(3)]
            for i, cid in enumerate(carts):  # two warm-ups fill the caches, then count
                calls[0], counting[0] = 0, i == 2
                r = client.post(f"/carts/{cid}/checkout", json=PAYMENT,
                                headers={"Idempotency-Key": f"c-{cid}"})
                counting[0] = False
                assert r.status_code == 201, r.text
            out[size] = calls[0]
            say(f"calls {name}: {size} lines: {out[size]} Python calls")
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
        *section_head(START, "Cart operations and how checkout cost grows (issue 6)",
                      "bench_cart.py", when, command),
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
        f"at `{WAREHOUSE}`); {args.carts} checkouts per size after 3 warm-up rounds, median; "
        "all sizes and the variants below are measured in turns, in a new random order each "
        "round, so drift falls on all alike; "
        "statements counted as in the SQLite section (sent while serving the request).",
        "",
        "| lines | time per checkout | ÷ `GET /markets` | Python calls | SQL statements | "
        "of which data | `UPDATE niaga_stock` |",
        "|---|---|---|---|---|---|---|",
    ]
    floor_ms = sc["sizes"]["floor_ms"]
    for n in SIZES:
        x = s[n]
        lines.append(f"| {n} | {x['ms']:.2f} ms | {x['ms'] / floor_ms:.0f}× | "
                     f"{x['calls']} | {x['statements']:.0f} | {x['data']:.0f} | "
                     f"{x['stock_updates']} |")
    grows = fifty["statements"] - one["statements"]
    c1, c10, c50 = one["calls"], ten["calls"], fifty["calls"]
    clin = (c50 - c10) / 40 / ((c10 - c1) / 9)
    lines += [
        "",
        f"- Python calls (counted with a profile hook in a separate pass: repeatable to a "
        f"few calls): {c1} → {c10} → {c50}; per extra line {(c10 - c1) / 9:.0f} from 1 to 10 "
        f"lines and {(c50 - c10) / 40:.0f} from 10 to 50: ratio **{clin:.2f}** "
        f"({'linear' if 0.8 <= clin <= 1.2 else 'NOT linear'}: within 20 % of 1; the work "
        "per line does not grow with the number of lines).",
        f"- per extra line: **{per_line:.3f} ms** ((t50 − t1) / 49); t50 ÷ t1 = "
        f"{fifty['ms'] / one['ms']:.1f} for 50× the lines. t50 ÷ (t1 + 49 × the per-line "
        f"cost seen between 1 and 10 lines) = **{lin:.2f}** (1 is linear; a ratio of times "
        "on a shared machine, so it carries its noise: the call count above is the exact "
        "measure).",
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
        "| variant | time per checkout | ÷ `GET /markets` | Python calls | SQL statements |",
        "|---|---|---|---|---|",
    ]
    for label, x in ((f"{len(few['plugins'])} plugins in DE", few),
                     (f"{len(many['plugins'])} plugins in DE", many),
                     (f"{m4['markets']} markets", m4), (f"{m40['markets']} markets", m40)):
        y = x["sizes"][3]
        lines.append(f"| {label} | {y['ms']:.2f} ms | {y['ms'] / x['floor_ms']:.0f}× | "
                     f"{y['calls']} | {y['statements']:.0f} |")
    rp = many["sizes"][3]["ms"] / few["sizes"][3]["ms"]
    rm = m40["sizes"][3]["ms"] / m4["sizes"][3]["ms"]
    cp = many["sizes"][3]["calls"] / few["sizes"][3]["calls"]
    cm = m40["sizes"][3]["calls"] / m4["sizes"][3]["calls"]
    lines += [
        "",
        f"- {len(many['plugins'])} ÷ {len(few['plugins'])} plugins: time **{rp:.2f}**, "
        f"Python calls **{cp:.2f}** (the extra plugins answer hooks a checkout calls: "
        "payment methods, delivery options, risk, loyalty; 3 is the fewest a checkout can "
        "run with: tax, payment and delivery).",
        f"- {m40['markets']} ÷ {m4['markets']} markets: time **{rm:.2f}**, Python calls "
        f"**{cm:.2f}** ({'flat' if cm <= 1.02 and rm <= 1.15 else 'NOT flat'}: calls within "
        "2 % and time within 15 %; a checkout touches only its own market's plugin manager).",
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
    command, when, load = run_context("bench_cart.py", argv)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="niaga-bench-cart-"))
    try:
        ops = cart_ops(args, tmp)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        log = StatementLog()
        log.install()
        with contextlib.ExitStack() as stack:
            variants = [
                open_variant(stack, tmp, "sizes", None, SIZES),
                open_variant(stack, tmp, "few", markets_file(tmp, "few", "few", 0), (3,)),
                open_variant(stack, tmp, "many", markets_file(tmp, "many", "many", 0), (3,)),
                open_variant(stack, tmp, "m4", None, (3,)),
                open_variant(stack, tmp, "m40", markets_file(tmp, "m40", "demo", 36), (3,)),
            ]
            sc = scaling(variants, log, args.carts)
        calls = {"sizes": count_calls(tmp, "sizes", None, SIZES)}
        for name, mfile in (("few", markets_file(tmp, "few", "few", 0)),
                            ("many", markets_file(tmp, "many", "many", 0)), ("m4", None),
                            ("m40", markets_file(tmp, "m40", "demo", 36))):
            calls[name] = count_calls(tmp, name, mfile, (3,))
        for name, counted in calls.items():
            for size, n in counted.items():
                sc[name]["sizes"][size]["calls"] = n
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
