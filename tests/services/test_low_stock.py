"""stock.low reaches a plugin's notify hook through the in-process relay (SQL engines) when a
POS sale or a count takes a row into low stock, in every market its location serves."""

from __future__ import annotations

import pytest

from kernel import hookimpl
from kernel.catalog import Location
from kernel.markets import parse_markets
from kernel.plugins import Registry
from kernel.runtime import Niaga
from kernel.services import catalog

SKU, LOC = "TOTE-CANVAS", "hub-de-jp"


class Watcher:
    """Records every stock.low it is told about, with the market it was told in."""

    name = "low-watcher"
    family = "inventory"
    seen: list[tuple[str, str, dict]] = []

    def __init__(self, market):
        self.market = market

    @hookimpl
    def niaga_event(self, event, market):
        if event.type == "stock.low":
            Watcher.seen.append((market.code, event.market, dict(event.data)))


@pytest.fixture
async def ctx(store, markets):
    from kernel.demo import seed

    raw = {code: {"name": m.name, "currency": m.currency, "locales": list(m.locales),
                  "prices_include_tax": m.prices_include_tax, "countries": list(m.countries),
                  "plugins": {**m.plugins, "low-watcher": {}}} for code, m in markets.items()}
    niaga = Niaga(store, parse_markets({"markets": raw}),
                  registry=Registry({"low-watcher": Watcher}))
    await seed(store, niaga.markets, niaga.clock())
    await store.put_location(Location(id=LOC, name="Shared hub", kind="warehouse",
                                      markets=["DE", "JP"], country="DE"))
    niaga.forget_locations()
    Watcher.seen = []
    yield niaga
    await niaga.dispatcher.stop()


async def test_a_pos_sale_into_low_stock_reaches_the_notify_hook_of_each_market(ctx):
    await catalog.set_stock(ctx, SKU, LOC, 8, low_threshold=3)
    await catalog.adjust(ctx, SKU, LOC, -4, "pos_sale")  # 4: above the threshold
    await ctx.dispatcher.drain()
    assert Watcher.seen == []
    level = await catalog.adjust(ctx, SKU, LOC, -2, "pos_sale")  # 2: crossed
    assert level.available == 2
    await ctx.dispatcher.drain()
    expected = {"sku": SKU, "location_id": LOC, "available": 2, "threshold": 3,
                "reason": "pos_sale"}
    # one event per market the hub serves, each delivered to that market's plugins only
    assert sorted(Watcher.seen, key=lambda s: s[0]) == [("DE", "DE", expected),
                                                         ("JP", "JP", expected)]
    await catalog.adjust(ctx, SKU, LOC, -1, "write_off")  # still low: no news
    await ctx.dispatcher.drain()
    assert len(Watcher.seen) == 2


async def test_the_relay_runs_by_itself_after_the_sale(ctx):
    import asyncio

    await catalog.set_stock(ctx, SKU, LOC, 5, low_threshold=4)
    await catalog.adjust(ctx, SKU, LOC, -1, "marketplace_sale")
    for _ in range(100):  # kicked by the sale; no drain() here
        if len(Watcher.seen) == 2:
            break
        await asyncio.sleep(0.02)
    assert {(m, d["reason"]) for m, _, d in Watcher.seen} == {("DE", "marketplace_sale"),
                                                              ("JP", "marketplace_sale")}
