"""Hook dispatch in a checkout: hook calls per checkout, and the share of checkout CPU spent
dispatching hooks vs in plugin code (issue 3).

Run: ``.venv/bin/python tests/bench/bench_hooks.py [--checkouts N] [--out docs/BENCHMARKS.md]``

The checkout service runs in process (no HTTP) on a fresh SQLite store with the demo
markets, and is profiled with cProfile on the main thread's CPU clock. Plugin calls that
the kernel normally runs in a worker thread run inline here, so their code is profiled
too. SQLite's own threads are outside the denominator, so the dispatch share is
overstated, never understated.

- dispatch: own time of the kernel's calling conventions (``MarketPlugins.first``,
  ``collect``, ``chain``, ``notify`` and helpers) and of pluggy itself;
- plugin code: time inside the hook implementations (``plugins/``, and the kernel's own
  default implementations), callees included.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import platform
import pstats
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

START = "<!-- bench:hooks:start -->"
END = "<!-- bench:hooks:end -->"
TARGET_SHARE = 5.0
SKUS = ("BATIK-SHIRT-L", "SARONG-TENUN", "COFFEE-GAYO-250")


def say(text: str) -> None:
    print(f"[bench-hooks] {text}", flush=True)


async def prepare(db: str, n: int):
    from kernel.cart import Address
    from kernel.cli import build
    from kernel.cli import prepare as prepare_store
    from kernel.services import carts

    await prepare_store(db, None, True)
    niaga = build(db, None)
    await niaga.start()
    warehouse = next(loc.id for loc in await niaga.locations("DE") if loc.kind == "warehouse")
    for sku in SKUS:
        await niaga.store.set_stock(sku, warehouse, 100_000, "bench", niaga.clock())
    ids = []
    for i in range(n):
        cart = await carts.create_cart(niaga, "DE", "web", None)
        for sku in SKUS:
            await carts.add_line(niaga, cart.id, sku, 1)
        await carts.set_address(niaga, cart.id, Address(country="DE", city="Berlin",
                                                        postal_code="10115", line1="Str. 1"))
        options = await carts.delivery_options(niaga, cart.id)
        await carts.set_delivery(niaga, cart.id, next(o.id for o in options if o.kind == "ship"))
        ids.append(cart.id)
        if (i + 1) % 50 == 0:
            say(f"prepared {i + 1}/{n} carts")
    return niaga, ids


def count_hooks(niaga: Any) -> Counter[str]:
    """Wrap the four calling conventions to count hook calls and implementations run."""
    from kernel.plugins import MarketPlugins

    counts: Counter[str] = Counter()
    for name in ("first", "collect", "notify"):
        original = getattr(MarketPlugins, name)

        def wrapped(self, hook, _original=original, **kwargs):
            counts[hook] += 1
            counts["impls registered"] += len(self._impls(hook))
            return _original(self, hook, **kwargs)

        setattr(MarketPlugins, name, wrapped)
    original_chain = MarketPlugins.chain

    def chain(self, hook, value_arg, value, **kwargs):
        counts[hook] += 1
        counts["impls registered"] += len(self._impls(hook))
        return original_chain(self, hook, value_arg, value, **kwargs)

    MarketPlugins.chain = chain
    return counts


def inline_offload(niaga: Any) -> None:
    async def offload(fn, /, *args, market, plugin, **kwargs):
        return fn(*args, **kwargs)

    niaga.offload = offload


def shares(stats: pstats.Stats) -> dict[str, float]:
    """Seconds of own time in dispatch, cumulative time in hook implementations, total."""
    raw = stats.stats  # type: ignore[attr-defined]
    dispatch = plugin = 0.0
    total = max(ct for (_, _, _), (_, _, _, ct, _) in raw.items())
    for (filename, _line, func), (_cc, _nc, tottime, cumtime, callers) in raw.items():
        path = filename.replace("\\", "/")
        if (path.endswith("kernel/plugins.py") and func in (
                "first", "collect", "chain", "notify", "_impls", "_named", "<listcomp>",
                "<genexpr>")) or "/pluggy/" in path:
            dispatch += tottime
        # a hook implementation: a niaga_* function, called from the dispatch code
        if func.startswith("niaga_") and any(
                c[0].replace("\\", "/").endswith("kernel/plugins.py") for c in callers):
            plugin += cumtime
    return {"dispatch": dispatch, "plugin": plugin, "total": total}


async def run(n: int) -> dict[str, Any]:
    from kernel.services.checkout import checkout

    tmp = Path(tempfile.mkdtemp(prefix="niaga-bench-hooks-"))
    niaga, ids = await prepare(str(tmp / "hooks.sqlite"), n + 10)
    inline_offload(niaga)
    payment = {"method": "testpay", "token": "tok_ok"}
    for cart_id in ids[:10]:  # warm-up, not counted
        await checkout(niaga, cart_id, payment, f"warm-{cart_id}", "h")
    await niaga.dispatcher.drain()
    counts = count_hooks(niaga)
    # count on one checkout (and the events it emits, delivered by the relay)
    await checkout(niaga, ids[10], payment, "count", "h")
    await niaga.dispatcher.drain()
    per_checkout = dict(counts)
    calls = sum(v for k, v in counts.items() if k != "impls registered")
    say(f"hook calls in one checkout: {calls}")
    profiler = cProfile.Profile(time.thread_time)
    started = time.thread_time()
    profiler.enable()
    for cart_id in ids[11:n + 10]:
        await checkout(niaga, cart_id, payment, f"k-{cart_id}", "h")
    profiler.disable()
    cpu = time.thread_time() - started
    await niaga.dispatcher.drain()
    await niaga.close()
    found = shares(pstats.Stats(profiler))
    return {"counts": per_checkout, "n": n - 1, "cpu": cpu, **found}


def report(result: dict[str, Any], command: str) -> str:
    counts = dict(result["counts"])
    impls = counts.pop("impls registered", 0)
    calls = sum(counts.values())
    n = result["n"]
    dispatch_share = 100 * result["dispatch"] / result["cpu"]
    plugin_share = 100 * result["plugin"] / result["cpu"]
    met = "**met**" if dispatch_share <= TARGET_SHARE else "**not met**"
    per = {k: 1000 * result[k] / n for k in ("cpu", "dispatch", "plugin")}
    rows = "\n".join(f"| `{hook}` | {count} |" for hook, count in sorted(counts.items()))
    return f"""{START}
## Hook dispatch per checkout (issue 3)

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `tests/bench/bench_hooks.py`:

```
{command}
```

- machine: `os.cpu_count()` = {os.cpu_count()}; Python {platform.python_version()}
- the checkout service in process on SQLite with the demo markets (DE: `vat`, `testpay`,
  `bank-transfer`, `flat-rate`, `store-pickup` and the rest of DE's plugins), 3-line carts,
  {n} checkouts profiled with cProfile on the main thread's CPU clock; plugin calls that
  normally run in a worker thread run inline so their code is profiled too. SQLite's own
  threads are outside the denominator, so the dispatch share is overstated, not understated.

One checkout (with the relay delivering its events) makes **{calls} hook calls**, with
{impls} hook implementations registered for them in all (a first-result call stops at the
first answer, so fewer run):

| hook | calls |
|---|---|
{rows}

| measure | result |
|---|---|
| checkout CPU, main thread | {per['cpu']:.2f} ms per checkout |
| in hook dispatch (kernel calling conventions + pluggy) | \
{per['dispatch']:.3f} ms = **{dispatch_share:.1f} %** |
| in plugin code (hook implementations, callees included) | \
{per['plugin']:.3f} ms = {plugin_share:.1f} % |

Target: dispatch ≤ {TARGET_SHARE:g} % of checkout CPU: {dispatch_share:.1f} % — {met}.
{END}"""


def write(out: Path, section: str) -> None:
    text = out.read_text() if out.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    out.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkouts", type=int, default=200)
    parser.add_argument("--out", default=None, help="write the section into this Markdown file")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python", "tests/bench/bench_hooks.py", *sys.argv[1:]])
    result = asyncio.run(run(args.checkouts))
    section = report(result, command)
    print(section)
    if args.out:
        write(Path(args.out), section)
        say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
