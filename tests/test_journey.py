"""`niaga demo` and examples/omnichannel_journey.py: the scripted omnichannel journey.

Expectations come from the demo catalog and markets file (inputs), not from a run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from kernel import journey
from tests.api.helpers import markets_toml, seeded_stock

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ran() -> tuple[dict[str, Any], list[str]]:
    lines: list[str] = []
    return journey.run(out=lines.append), lines


def _minor(money: dict[str, Any]) -> int:
    return int(Decimal(money["amount"]) * 100)  # IDR has two minor digits (ISO 4217)


def test_each_step_prints_stock_cart_order_and_points(ran):
    _, lines = ran
    text = "\n".join(lines)
    titles = [line for line in lines if line.startswith("== ")]
    assert len(titles) == 8, titles
    for caption in ("stock (the one pool", "cart ", "order ", "points"):
        assert caption in text
    # the cart the web started is the one the app finds and the order records both
    assert "channels: web, app" in text and "touched by web, app" in text


def test_the_store_row_serves_the_pickup_the_till_and_the_return(ran):
    result, _ = ran
    rows = {(r["sku"], r["location_id"]): r for r in result["stock"]}
    shirt = seeded_stock(journey.SHIRT, "ID")
    coffee = seeded_stock(journey.COFFEE, "ID")
    tea = seeded_stock(journey.TEA, "ID")
    store, wh = journey.STORE, journey.WAREHOUSE
    # Sari's shirt and the walk-in's shirt both left the Grand Indonesia shelf
    assert rows[(journey.SHIRT, store)]["on_hand"] == shirt[store] - 2
    # two bags collected, one came back to the shelf
    assert rows[(journey.COFFEE, store)]["on_hand"] == coffee[store] - 2 + 1
    assert rows[(journey.TEA, store)]["on_hand"] == tea[store] - 1
    # the marketplace sale was booked against the warehouse
    assert rows[(journey.COFFEE, wh)]["on_hand"] == coffee[wh] - 2
    assert all(r["reserved"] == 0 for r in rows.values()), "collected orders hold nothing"


def test_points_earned_then_part_taken_back_by_the_return(ran):
    result, _ = ran
    order = result["order"]
    points = markets_toml()["ID"]["plugins"]["points"]
    goods = _minor(order["total"]) - _minor(order["shipping_total"])
    # earn_per_unit is points per rupiah; a rupiah is 100 minor units; member tier x1
    earned = int(Fraction(goods, 100) * Fraction(points["earn_per_unit"]))
    assert result["earned"] == earned > 0
    coffee = next(li for li in order["lines"] if li["sku"] == journey.COFFEE)
    refund = _minor(order["payment"]["refunded"])
    # one of two bags: the refund is half the line's paid total (the first unit's share)
    assert refund == _minor(coffee["total"]) // 2
    assert result["balance"] == earned - earned * refund // goods


def test_orders_end_where_the_journey_leaves_them(ran):
    result, _ = ran
    order, sale = result["order"], result["pos_sale"]
    assert order["status"] == "partially_returned"
    assert order["channel"] == "web" and order["channels"] == ["web", "app"]
    assert sale["channel"] == "pos" and sale["status"] == "fulfilled"
    assert sale["payment"]["status"] == "captured"
    events = [e["event"] for e in order["history"]]
    assert {"ready_for_pickup", "picked_up", "returned"} <= set(events), events


def test_niaga_demo_runs_in_under_ten_seconds():
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "kernel.cli", "demo"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert "niaga demo: done in" in done.stdout
    assert elapsed < 10, f"niaga demo took {elapsed:.1f} s"


def test_the_example_is_the_same_journey(ran):
    _, lines = ran
    done = subprocess.run([sys.executable, "examples/omnichannel_journey.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    titles = [line for line in done.stdout.splitlines() if line.startswith("== ")]
    assert titles == [line for line in lines if line.startswith("== ")]
