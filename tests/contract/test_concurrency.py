"""Concurrency contract: no overselling and no lost updates, on every engine.

The acceptance test of the inventory work: 50 concurrent checkouts of one unit
against a stock of 10 give exactly 10 orders, leave 0 available, and never let
a stock row go negative, on SQLite (pooled connections, BEGIN IMMEDIATE and a
busy timeout) and on PostgreSQL alike. Everything goes through the real
checkout service or the store's public port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import msgspec

from kernel.cart import Address
from kernel.errors import Conflict, InProgress, OutOfStock, VersionConflict
from kernel.ids import new_id
from kernel.inventory import StockLevel
from kernel.orders import Order
from kernel.runtime import Niaga
from kernel.services.carts import (
    add_line,
    create_cart,
    delivery_options,
    set_address,
    set_delivery,
)
from kernel.services.checkout import checkout
from kernel.store.base import StockEffects, StockShortage, Store
from plugins.payments.testpay import TestPay

PAYMENT = {"method": "testpay", "token": "tok_ok"}
BERLIN = Address(country="DE", city="Berlin", postal_code="10115", line1="Invalidenstraße 1",
                 email="kunde@example.com")


# helpers ---------------------------------------------------------------------------


class StockWatch:
    """Samples every stock row of some SKUs while a race runs; remembers any row that is
    ever outside 0 <= reserved <= on_hand."""

    def __init__(self, store: Store, skus: list[str]):
        self.store, self.skus = store, skus
        self.bad: list[StockLevel] = []
        self.samples = 0
        self._stop = asyncio.Event()

    async def _run(self) -> None:
        while not self._stop.is_set():
            for level in (await self.store.get_stock(self.skus)).values():
                if not 0 <= level.reserved <= level.on_hand:
                    self.bad.append(level)
            self.samples += 1
            await asyncio.sleep(0.002)

    async def during(self, *aws: Awaitable) -> list:
        watcher = asyncio.create_task(self._run())
        try:
            return await asyncio.gather(*aws, return_exceptions=True)
        finally:
            self._stop.set()
            await watcher


async def _de_sku_with_stock(niaga: Niaga, on_hand: int) -> tuple[str, str]:
    """A demo SKU sold in DE with ``on_hand`` at the DE warehouse and 0 at every DE store."""
    sku = sorted(p.sku for p in await niaga.store.list_products() if p.price_in("DE"))[0]
    locations = await niaga.store.list_locations("DE")
    warehouse = next(loc.id for loc in locations if loc.kind == "warehouse")
    for loc in locations:
        await niaga.store.set_stock(sku, loc.id, on_hand if loc.id == warehouse else 0,
                                    "test", niaga.clock())
    return sku, warehouse


async def _ready_cart(niaga: Niaga, sku: str) -> str:
    cart = await create_cart(niaga, "DE", "web", None)
    await add_line(niaga, cart.id, sku, 1)
    await set_address(niaga, cart.id, BERLIN)
    options = await delivery_options(niaga, cart.id)
    ship = next(o for o in options if o.kind == "ship")
    await set_delivery(niaga, cart.id, ship.id)
    return cart.id


async def _ready_carts(niaga: Niaga, sku: str, n: int) -> list[str]:
    return list(await asyncio.gather(*(_ready_cart(niaga, sku) for _ in range(n))))


def _outcomes(results: list) -> tuple[list[Order], list[BaseException]]:
    orders = [r[0] for r in results if isinstance(r, tuple)]
    for r in results:
        if isinstance(r, tuple):
            assert isinstance(r[0], Order) and r[1] is True, r
    failures = [r for r in results if isinstance(r, BaseException)]
    return orders, failures


def _net_payments() -> int:
    taken = len(TestPay.calls_of("authorize"))
    given_back = len(TestPay.calls_of("void")) + len(TestPay.calls_of("refund"))
    return taken - given_back


async def _all_rows_sane(store: Store) -> None:
    skus = [p.sku for p in await store.list_products()]
    for key, level in (await store.get_stock(skus)).items():
        assert 0 <= level.reserved <= level.on_hand, (key, level)


# the acceptance test -----------------------------------------------------------------


async def test_50_checkouts_against_stock_10_place_exactly_10_orders(niaga):
    sku, warehouse = await _de_sku_with_stock(niaga, 10)
    cart_ids = await _ready_carts(niaga, sku, 50)
    TestPay.reset()

    watch = StockWatch(niaga.store, [sku])
    results = await watch.during(*(checkout(niaga, cart_id, PAYMENT, f"key-{i}", "h")
                                   for i, cart_id in enumerate(cart_ids)))

    orders, failures = _outcomes(results)
    unexpected = [f for f in failures if not isinstance(f, OutOfStock)]
    assert unexpected == [], f"only OutOfStock may fail a checkout here: {unexpected!r}"
    assert (len(orders), len(failures)) == (10, 40)

    level = (await niaga.store.get_stock([sku], [warehouse]))[(sku, warehouse)]
    assert (level.on_hand, level.reserved, level.available) == (10, 10, 0)
    assert watch.samples > 0 and watch.bad == [], watch.bad
    await _all_rows_sane(niaga.store)

    stored = await niaga.store.list_orders()
    assert sorted(o.id for o in stored) == sorted(o.id for o in orders)
    assert sum(li.quantity for o in stored for li in o.lines if li.sku == sku) == 10
    assert all(o.status == "paid" for o in stored)
    assert sorted(o.cart_id for o in stored) == sorted(
        cid for cid, r in zip(cart_ids, results, strict=True) if isinstance(r, tuple))

    # the gateway took exactly 10 payments, net of voids and refunds
    assert _net_payments() == 10
    assert sorted(c[1] for c in TestPay.calls_of("authorize")) == sorted(
        o.payment.reference for o in orders)
    # every losing cart is still open and can be retried once stock comes back
    for cid, r in zip(cart_ids, results, strict=True):
        if not isinstance(r, tuple):
            assert (await niaga.store.get_cart(cid)).status == "open"


async def test_pos_sales_racing_checkouts_never_oversell(niaga):
    sku, warehouse = await _de_sku_with_stock(niaga, 20)
    cart_ids = await _ready_carts(niaga, sku, 15)
    TestPay.reset()

    async def pos_sale() -> StockLevel:
        return await niaga.store.adjust_stock(sku, warehouse, -1, "pos-sale", niaga.clock())

    racers: list[Awaitable] = []
    for i, cart_id in enumerate(cart_ids):  # interleaved: checkout, sale, checkout, sale …
        racers += [checkout(niaga, cart_id, PAYMENT, f"key-{i}", "h"), pos_sale()]
    watch = StockWatch(niaga.store, [sku])
    results = await watch.during(*racers)

    checkouts, sales = results[0::2], results[1::2]
    orders, checkout_failures = _outcomes(checkouts)
    assert all(isinstance(f, OutOfStock) for f in checkout_failures), checkout_failures
    sold = [s for s in sales if isinstance(s, StockLevel)]
    refused = [s for s in sales if not isinstance(s, StockLevel)]
    assert all(type(s) is Conflict for s in refused), refused

    level = (await niaga.store.get_stock([sku], [warehouse]))[(sku, warehouse)]
    assert level.on_hand == 20 - len(sold)
    assert level.reserved == len(orders)
    # demand (30) exceeds supply (20): whatever was refused was refused at 0 available
    assert len(orders) + len(sold) == 20
    assert level.available == 0
    assert watch.bad == [], watch.bad
    assert all(s.on_hand >= s.reserved for s in sold)
    assert _net_payments() == len(orders)
    await _all_rows_sane(niaga.store)


async def test_twin_checkouts_of_one_cart_charge_once(niaga):
    sku, warehouse = await _de_sku_with_stock(niaga, 10)
    cart_id = await _ready_cart(niaga, sku)
    TestPay.reset()

    results = await asyncio.gather(*(checkout(niaga, cart_id, PAYMENT, "same-key", "h")
                                     for _ in range(5)), return_exceptions=True)

    # one creates the order; each twin either replays it or, while the first still holds
    # the stock, is told to retry (409 in_progress, as Stripe answers concurrent twins)
    orders = [r for r in results if isinstance(r, tuple)]
    assert all(isinstance(r, tuple | InProgress) for r in results), results
    assert len({o.id for o, _ in orders}) == 1
    assert sum(1 for _, created in orders if created) == 1
    again, created = await checkout(niaga, cart_id, PAYMENT, "same-key", "h")
    assert not created and again.id == orders[0][0].id  # a later retry is a plain replay
    level = (await niaga.store.get_stock([sku], [warehouse]))[(sku, warehouse)]
    assert (level.on_hand, level.reserved) == (10, 1)
    assert len(await niaga.store.list_orders()) == 1
    assert _net_payments() == 1, TestPay.calls


# store-level races -------------------------------------------------------------------


async def test_40_reservations_against_stock_7(store, build):
    await store.set_stock("SKU-A", "de-lej-wh", 7, "count", build.T0)
    order_ids = [new_id() for _ in range(40)]

    watch = StockWatch(store, ["SKU-A"])
    results = await watch.during(*(
        store.reserve([build.reservation(oid, "SKU-A", "de-lej-wh", 1)], "DE", [])
        for oid in order_ids))

    assert sum(r is None for r in results) == 7
    shortages = [r for r in results if isinstance(r, StockShortage)]
    assert len(shortages) == 33, [r for r in results if r is not None
                                  and not isinstance(r, StockShortage)]
    assert all(s.rows == [("SKU-A", "de-lej-wh")] for s in shortages)
    level = await build.level(store, "SKU-A", "de-lej-wh")
    assert (level.on_hand, level.reserved, level.available) == (7, 7, 0)
    assert watch.bad == []

    # exactly the winners hold a reservation: releasing every id gives back 7
    released = await asyncio.gather(*(store.release_orphans(oid) for oid in order_ids))
    assert sum(released) == 7
    assert sorted(released, reverse=True)[:8] == [1] * 7 + [0]
    assert (await build.level(store, "SKU-A", "de-lej-wh")).reserved == 0


async def test_multi_row_reservations_race_all_or_nothing(store, build):
    # each checkout needs one A and one B; B runs out first. Nobody may hold an A
    # without its B (that would strand A units).
    await store.set_stock("SKU-A", "de-lej-wh", 20, "count", build.T0)
    await store.set_stock("SKU-B", "de-ber-store", 6, "count", build.T0)

    results = await asyncio.gather(*(
        store.reserve([build.reservation(oid, "SKU-A", "de-lej-wh", 1),
                       build.reservation(oid, "SKU-B", "de-ber-store", 1)], "DE", [])
        for oid in [new_id() for _ in range(15)]), return_exceptions=True)

    assert sum(r is None for r in results) == 6
    assert all(isinstance(r, StockShortage) for r in results if r is not None), results
    stock = await store.get_stock(["SKU-A", "SKU-B"])
    assert stock[("SKU-A", "de-lej-wh")].reserved == 6
    assert stock[("SKU-B", "de-ber-store")].reserved == 6


async def test_concurrent_save_cart_one_winner(store, build):
    cart = build.cart()
    await store.create_cart(cart)
    edits = [msgspec.structs.replace(cart, version=2, updated_at=build.T0 + i,
                                     channels=["web", f"edit-{i}"])
             for i in range(10)]

    results = await asyncio.gather(*(store.save_cart(e, expected_version=1) for e in edits),
                                   return_exceptions=True)

    winners = [e for e, r in zip(edits, results, strict=True) if r is None]
    assert len(winners) == 1
    assert sum(isinstance(r, VersionConflict) for r in results) == 9, results
    assert await store.get_cart(cart.id) == winners[0]


async def test_concurrent_place_order_for_one_cart_one_winner(store, build):
    cart = build.cart()
    await store.create_cart(cart)
    orders = [build.order(cart) for _ in range(8)]

    results = await asyncio.gather(*(
        store.place_order(o, build.closed(cart), cart.version,
                          [build.event("order.placed", o.id, build.T0)])
        for o in orders), return_exceptions=True)

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None), results
    [winner] = [o for o, r in zip(orders, results, strict=True) if r is None]
    assert await store.list_orders() == [winner]
    assert await store.get_order_by_cart(cart.id) == winner
    assert [e.subject for e in await store.pending_events()] == [winner.id]


async def test_concurrent_save_order_one_winner(store, build):
    await store.set_stock("SKU-A", "de-lej-wh", 5, "count", build.T0)
    order, _ = await build.placed(store, reservations=[("SKU-A", "de-lej-wh", 3)])

    def cancelled(i: int) -> Order:
        new = msgspec.structs.replace(order, version=2, history=[*order.history])
        new.move_to("cancelled", build.T0 + i, f"cancel-{i}")
        return new

    attempts = [cancelled(i) for i in range(6)]
    results = await asyncio.gather(*(
        store.save_order(a, 1, [build.event("order.cancelled", order.id, build.T0)],
                         StockEffects(release=True)) for a in attempts),
        return_exceptions=True)

    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, VersionConflict) for r in results) == 5, results
    [winner] = [a for a, r in zip(attempts, results, strict=True) if r is None]
    assert await store.get_order(order.id) == winner
    level = await build.level(store, "SKU-A", "de-lej-wh")
    assert (level.on_hand, level.reserved) == (5, 0)  # released once, not six times
    assert len(await store.pending_events()) == 1


async def test_stock_count_racing_reservations_never_goes_below_reserved(store, build):
    # a stock-take sets on_hand while checkouts reserve the same row: either the count
    # lands (and is at least what is reserved by then) or it is refused with a Conflict
    for round_ in range(8):
        sku = f"SKU-{round_}"
        await store.set_stock(sku, "de-lej-wh", 10, "count", build.T0)
        racers: list[Awaitable] = [
            store.reserve([build.reservation(new_id(), sku, "de-lej-wh", 1)], "DE", [])
            for _ in range(8)]
        racers.insert(4, store.set_stock(sku, "de-lej-wh", 3, "count", build.T0))
        results = await asyncio.gather(*racers, return_exceptions=True)

        count = results[4]
        reserves = results[:4] + results[5:]
        assert isinstance(count, StockLevel) or type(count) is Conflict, count
        assert all(r is None or isinstance(r, StockShortage) for r in reserves), reserves
        level = await build.level(store, sku, "de-lej-wh")
        assert 0 <= level.reserved <= level.on_hand, (round_, level, count)
        assert level.reserved == sum(r is None for r in reserves)
        assert level.on_hand == (3 if isinstance(count, StockLevel) else 10)


async def test_concurrent_set_stock_of_a_new_row(store, build):
    results = await asyncio.gather(*(store.set_stock("SKU-NEW", "de-lej-wh", n, "count",
                                                     build.T0) for n in range(1, 7)),
                                   return_exceptions=True)
    assert all(isinstance(r, StockLevel) for r in results), results
    level = await build.level(store, "SKU-NEW", "de-lej-wh")
    assert level.on_hand in range(1, 7) and level.reserved == 0


async def test_concurrent_puts_of_one_product_and_location(store, build):
    products = [build.product("SKU-A", eur=100 + i) for i in range(6)]
    locations = [build.location("de-lej-wh", ["DE"] if i % 2 else ["DE", "JP"])
                 for i in range(6)]
    results = await asyncio.gather(*(store.put_product(p) for p in products),
                                   *(store.put_location(loc) for loc in locations),
                                   return_exceptions=True)
    assert all(r is None for r in results), results
    [stored] = await store.list_products()
    assert stored in products
    [where] = await store.list_locations()
    assert where in locations


async def test_concurrent_pos_sales_stop_at_zero(store, build):
    await store.set_stock("SKU-A", "de-ber-store", 12, "count", build.T0)
    await store.reserve([build.reservation(new_id(), "SKU-A", "de-ber-store", 2)], "DE", [])

    results = await asyncio.gather(*(store.adjust_stock("SKU-A", "de-ber-store", -1, "pos-sale",
                                                        build.T0) for _ in range(20)),
                                   return_exceptions=True)

    sold = [r for r in results if isinstance(r, StockLevel)]
    assert len(sold) == 10
    assert all(type(r) is Conflict for r in results if not isinstance(r, StockLevel)), results
    assert sorted(s.on_hand for s in sold) == list(range(2, 12))  # each saw its own update
    level = await build.level(store, "SKU-A", "de-ber-store")
    assert (level.on_hand, level.reserved) == (2, 2)


async def test_concurrent_release_of_one_checkout_gives_back_once(store, build):
    # the checkout's own undo and the sweeper may release the same reservation together
    await store.set_stock("SKU-A", "de-lej-wh", 10, "count", build.T0)
    await store.set_stock("SKU-B", "de-lej-wh", 10, "count", build.T0)
    crashed = new_id()
    await store.reserve([build.reservation(crashed, "SKU-A", "de-lej-wh", 3),
                         build.reservation(crashed, "SKU-B", "de-lej-wh", 2)], "DE", [])

    released = await asyncio.gather(*(store.release_orphans(crashed) for _ in range(6)))

    assert sorted(released) == [0, 0, 0, 0, 0, 5]
    stock = await store.get_stock(["SKU-A", "SKU-B"])
    assert {k: v.reserved for k, v in stock.items()} == {("SKU-A", "de-lej-wh"): 0,
                                                         ("SKU-B", "de-lej-wh"): 0}


async def test_concurrent_sign_ups_with_one_email(store, build):
    customers = [build.customer("same@example.com", name=f"n{i}") for i in range(6)]

    results = await asyncio.gather(*(store.create_customer(c) for c in customers),
                                   return_exceptions=True)

    assert sum(r is None for r in results) == 1
    conflicts = [r for r in results if r is not None]
    assert all(isinstance(r, Conflict) for r in conflicts), conflicts
    assert all([e["field"] for e in r.errors] == ["email"] for r in conflicts)
    [winner] = [c for c, r in zip(customers, results, strict=True) if r is None]
    assert await store.get_customer_by_email("same@example.com") == winner


async def test_lines_added_from_two_channels_at_once_are_never_lost(niaga):
    """The same cart edited from the web and the app at once: every edit is either in the
    cart or refused with a 409 (VersionConflict after the retries), never silently lost."""
    cart = await create_cart(niaga, "DE", "web", None)
    skus = [p.sku for p in await niaga.store.list_products() if "DE" in p.prices][:6]
    channels = ["web", "app"] * 3
    results = await asyncio.gather(
        *[add_line(niaga, cart.id, sku, 1, channel) for sku, channel in zip(skus, channels,
                                                                            strict=False)],
        return_exceptions=True)
    won = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, VersionConflict) for r in refused), refused
    assert won, "some edit went through"

    final = await niaga.store.get_cart(cart.id)
    assert sorted(line.sku for line in final.lines) == sorted(skus[i] for i in won)
    assert final.version == cart.version + len(won), "one version per applied edit"
    assert set(final.channels) == {"web", *(channels[i] for i in won)}
