"""Storage contract: stock levels, reservations and orphaned checkouts."""

from __future__ import annotations

import pytest

from kernel.errors import Conflict, NotFound
from kernel.ids import new_id
from kernel.inventory import StockLevel
from kernel.store.base import StockShortage

WH, STORE = "de-lej-wh", "de-ber-store"


def _fields(exc: Conflict) -> list[str]:
    return [e["field"] for e in exc.errors]


# set_stock --------------------------------------------------------------------


async def test_set_stock_creates_then_updates(store, build):
    created = await store.set_stock("SKU-A", WH, 5, "count", build.T0)
    assert (created.sku, created.location_id, created.on_hand, created.reserved) == (
        "SKU-A", WH, 5, 0)
    assert await build.level(store, "SKU-A", WH) == StockLevel(sku="SKU-A", location_id=WH,
                                                               on_hand=5)

    updated = await store.set_stock("SKU-A", WH, 12, "count", build.T0 + 1)
    assert (updated.on_hand, updated.reserved, updated.available) == (12, 0, 12)
    assert (await build.level(store, "SKU-A", WH)).on_hand == 12

    zero = await store.set_stock("SKU-A", WH, 0, "count", build.T0 + 2)
    assert zero.on_hand == 0
    assert (await build.level(store, "SKU-A", WH)).on_hand == 0


async def test_set_stock_below_reserved_is_a_conflict_naming_on_hand(store, build):
    await store.set_stock("SKU-A", WH, 10, "count", build.T0)
    await store.reserve([build.reservation(new_id(), "SKU-A", WH, 4)], "DE", [])

    with pytest.raises(Conflict) as info:
        await store.set_stock("SKU-A", WH, 3, "count", build.T0)
    assert "on_hand" in _fields(info.value)
    level = await build.level(store, "SKU-A", WH)
    assert (level.on_hand, level.reserved) == (10, 4)

    # exactly what is reserved is allowed
    at_reserved = await store.set_stock("SKU-A", WH, 4, "count", build.T0)
    assert (at_reserved.on_hand, at_reserved.reserved, at_reserved.available) == (4, 4, 0)
    level = await build.level(store, "SKU-A", WH)
    assert (level.on_hand, level.reserved) == (4, 4)


# adjust_stock -------------------------------------------------------------------


async def test_adjust_stock_up_and_down(store, build):
    await store.set_stock("SKU-A", WH, 5, "count", build.T0)

    up = await store.adjust_stock("SKU-A", WH, 7, "delivery", build.T0)
    assert (up.sku, up.location_id, up.on_hand, up.reserved) == ("SKU-A", WH, 12, 0)
    down = await store.adjust_stock("SKU-A", WH, -12, "pos-sale", build.T0)
    assert (down.on_hand, down.reserved) == (0, 0)
    assert (await build.level(store, "SKU-A", WH)).on_hand == 0


async def test_adjust_stock_below_reserved_is_a_conflict_and_changes_nothing(store, build):
    await store.set_stock("SKU-A", WH, 10, "count", build.T0)
    await store.reserve([build.reservation(new_id(), "SKU-A", WH, 6)], "DE", [])

    with pytest.raises(Conflict) as info:
        await store.adjust_stock("SKU-A", WH, -5, "pos-sale", build.T0)
    assert not isinstance(info.value, NotFound)
    assert info.value.errors, "the conflict names the field at fault"
    level = await build.level(store, "SKU-A", WH)
    assert (level.on_hand, level.reserved) == (10, 6)

    # down to exactly the reserved units is fine
    ok = await store.adjust_stock("SKU-A", WH, -4, "pos-sale", build.T0)
    assert (ok.on_hand, ok.reserved, ok.available) == (6, 6, 0)


async def test_adjust_stock_below_zero_is_a_conflict_and_changes_nothing(store, build):
    await store.set_stock("SKU-A", WH, 2, "count", build.T0)

    with pytest.raises(Conflict):
        await store.adjust_stock("SKU-A", WH, -3, "pos-sale", build.T0)
    level = await build.level(store, "SKU-A", WH)
    assert (level.on_hand, level.reserved) == (2, 0)


async def test_adjust_stock_of_a_missing_row_is_not_found(store, build):
    await store.set_stock("SKU-A", WH, 2, "count", build.T0)

    with pytest.raises(NotFound):
        await store.adjust_stock("SKU-A", STORE, 1, "delivery", build.T0)
    with pytest.raises(NotFound):
        await store.adjust_stock("NOPE", WH, -1, "pos-sale", build.T0)
    assert await store.get_stock(["SKU-A", "NOPE"]) == {
        ("SKU-A", WH): StockLevel(sku="SKU-A", location_id=WH, on_hand=2)}


# get_stock ----------------------------------------------------------------------


async def test_get_stock_filters_by_skus_and_locations(store, build):
    for sku, loc, n in [("SKU-A", WH, 1), ("SKU-A", STORE, 2), ("SKU-B", WH, 3),
                        ("SKU-C", STORE, 4)]:
        await store.set_stock(sku, loc, n, "count", build.T0)

    everything = await store.get_stock(["SKU-A", "SKU-B", "SKU-C"])
    assert {k: v.on_hand for k, v in everything.items()} == {
        ("SKU-A", WH): 1, ("SKU-A", STORE): 2, ("SKU-B", WH): 3, ("SKU-C", STORE): 4}
    assert all(k == (v.sku, v.location_id) for k, v in everything.items())

    only_a = await store.get_stock(["SKU-A"])
    assert set(only_a) == {("SKU-A", WH), ("SKU-A", STORE)}

    at_wh = await store.get_stock(["SKU-A", "SKU-B", "SKU-C"], [WH])
    assert {k: v.on_hand for k, v in at_wh.items()} == {("SKU-A", WH): 1, ("SKU-B", WH): 3}

    a_at_store = await store.get_stock(iter(["SKU-A", "NOPE"]), iter([STORE, "elsewhere"]))
    assert {k: v.on_hand for k, v in a_at_store.items()} == {("SKU-A", STORE): 2}

    assert await store.get_stock([]) == {}
    assert await store.get_stock(["NOPE"]) == {}
    assert await store.get_stock(["SKU-A"], []) == {}


# reserve --------------------------------------------------------------------------


@pytest.mark.parametrize("short_sku", ["SKU-B", "SKU-0"], ids=["short-second", "short-first"])
async def test_reserve_is_all_or_nothing(store, build, short_sku):
    await store.set_stock("SKU-A", WH, 5, "count", build.T0)
    await store.set_stock(short_sku, WH, 1, "count", build.T0)
    order_id = new_id()
    placed = build.event("order.placed", order_id, build.T0)

    with pytest.raises(StockShortage) as info:
        await store.reserve([build.reservation(order_id, "SKU-A", WH, 3),
                             build.reservation(order_id, short_sku, WH, 2)], "DE", [placed])
    assert info.value.rows == [(short_sku, WH)]

    for sku, on_hand in (("SKU-A", 5), (short_sku, 1)):
        level = await build.level(store, sku, WH)
        assert (level.on_hand, level.reserved) == (on_hand, 0), sku
    assert await store.pending_events() == []  # its events were not written either
    assert await store.orphan_reservations(build.T0 + 10**6) == []  # nothing was held
    assert await store.release_orphans(order_id) == 0
    assert (await build.level(store, "SKU-A", WH)).reserved == 0


async def test_reserve_names_every_row_that_falls_short(store, build):
    await store.set_stock("SKU-A", WH, 1, "count", build.T0)
    await store.set_stock("SKU-B", WH, 9, "count", build.T0)
    await store.set_stock("SKU-C", STORE, 0, "count", build.T0)
    order_id = new_id()

    with pytest.raises(StockShortage) as info:
        await store.reserve([build.reservation(order_id, "SKU-C", STORE, 1),
                             build.reservation(order_id, "SKU-B", WH, 9),
                             build.reservation(order_id, "SKU-A", WH, 2),
                             build.reservation(order_id, "SKU-MISSING", WH, 1)], "DE", [])
    assert sorted(info.value.rows) == [("SKU-A", WH), ("SKU-C", STORE), ("SKU-MISSING", WH)]
    assert (await build.level(store, "SKU-B", WH)).reserved == 0


async def test_reserve_holds_stock_and_writes_its_events(store, build):
    await store.set_stock("SKU-A", WH, 5, "count", build.T0)
    await store.set_stock("SKU-A", STORE, 2, "count", build.T0)
    await store.set_stock("SKU-B", WH, 3, "count", build.T0)
    order_id = new_id()
    event = build.event("order.placed", order_id, build.T0, number="DE-TEST")

    await store.reserve([build.reservation(order_id, "SKU-A", WH, 3),
                         build.reservation(order_id, "SKU-A", STORE, 2),
                         build.reservation(order_id, "SKU-B", WH, 3)], "DE", [event])

    stock = await store.get_stock(["SKU-A", "SKU-B"])
    assert {k: (v.on_hand, v.reserved, v.available) for k, v in stock.items()} == {
        ("SKU-A", WH): (5, 3, 2), ("SKU-A", STORE): (2, 2, 0), ("SKU-B", WH): (3, 3, 0)}
    assert await store.pending_events() == [event]

    # a second checkout gets only what is left
    other = new_id()
    with pytest.raises(StockShortage) as info:
        await store.reserve([build.reservation(other, "SKU-A", WH, 3)], "DE", [])
    assert info.value.rows == [("SKU-A", WH)]
    await store.reserve([build.reservation(other, "SKU-A", WH, 2)], "DE", [])
    level = await build.level(store, "SKU-A", WH)
    assert (level.on_hand, level.reserved, level.available) == (5, 5, 0)


async def test_reserve_without_a_threshold_writes_no_low_stock_event(store, build):
    # A row without a threshold never produces stock.low, even when it runs dry (the
    # events themselves: test_contract_low_stock.py).
    await store.set_stock("SKU-A", WH, 2, "count", build.T0)
    await store.reserve([build.reservation(new_id(), "SKU-A", WH, 2)], "DE", [])
    level = await build.level(store, "SKU-A", WH)
    assert level.low_threshold == 0
    assert [e for e in await store.pending_events() if e.type == "stock.low"] == []


# orphans ------------------------------------------------------------------------------


async def test_release_orphans_gives_stock_back(store, build):
    await store.set_stock("SKU-A", WH, 5, "count", build.T0)
    await store.set_stock("SKU-B", STORE, 4, "count", build.T0)
    crashed, alive = new_id(), new_id()
    await store.reserve([build.reservation(crashed, "SKU-A", WH, 3),
                         build.reservation(crashed, "SKU-B", STORE, 1)], "DE", [])
    await store.reserve([build.reservation(alive, "SKU-A", WH, 1)], "DE", [])

    assert await store.release_orphans(crashed) == 4
    stock = await store.get_stock(["SKU-A", "SKU-B"])
    assert {k: v.reserved for k, v in stock.items()} == {("SKU-A", WH): 1, ("SKU-B", STORE): 0}
    assert {k: v.on_hand for k, v in stock.items()} == {("SKU-A", WH): 5, ("SKU-B", STORE): 4}

    assert await store.release_orphans(crashed) == 0  # nothing left to give back
    assert await store.release_orphans(new_id()) == 0  # never reserved anything
    assert (await build.level(store, "SKU-A", WH)).reserved == 1


async def test_release_orphans_of_a_placed_order_keeps_its_reservation(store, build):
    await store.set_stock("SKU-A", WH, 5, "count", build.T0)
    order, _ = await build.placed(store, reservations=[("SKU-A", WH, 2)])

    assert await store.release_orphans(order.id) == 0
    level = await build.level(store, "SKU-A", WH)
    assert (level.on_hand, level.reserved) == (5, 2)
    assert await store.orphan_reservations(build.T0 + 10**6) == []


async def test_orphan_reservations_lists_only_expired_ones_without_an_order(store, build):
    await store.set_stock("SKU-A", WH, 20, "count", build.T0)
    now = build.T0 + 3600
    expired, fresh, no_expiry = new_id(), new_id(), new_id()
    await store.reserve([build.reservation(expired, "SKU-A", WH, 1, expires_at=now - 1)],
                        "DE", [])
    await store.reserve([build.reservation(fresh, "SKU-A", WH, 1, expires_at=now + 60)],
                        "DE", [])
    await store.reserve([build.reservation(no_expiry, "SKU-A", WH, 1, expires_at=None)],
                        "DE", [])
    # an order placed from an (expired) reservation is not an orphan
    placed, _ = await build.placed(store, created_at=build.T0,
                                   reservations=[("SKU-A", WH, 1)])
    assert now > build.T0 + 900  # its reservation expired too

    assert await store.orphan_reservations(now) == [expired]
    assert sorted(await store.orphan_reservations(now + 120)) == sorted([expired, fresh])
    assert placed.id not in await store.orphan_reservations(now + 10**6)
    assert await store.orphan_reservations(build.T0) == []

    # released orphans are gone from the list; the order's units stay held
    assert await store.release_orphans(expired) == 1
    assert await store.orphan_reservations(now + 120) == [fresh]
    assert (await build.level(store, "SKU-A", WH)).reserved == 3  # fresh, no_expiry, placed


async def test_orphan_reservations_names_a_multi_row_checkout_once(store, build):
    await store.set_stock("SKU-A", WH, 5, "count", build.T0)
    await store.set_stock("SKU-B", WH, 5, "count", build.T0)
    crashed = new_id()
    await store.reserve([build.reservation(crashed, "SKU-A", WH, 1, expires_at=build.T0),
                         build.reservation(crashed, "SKU-B", WH, 2, expires_at=build.T0)],
                        "DE", [])
    assert await store.orphan_reservations(build.T0 + 1) == [crashed]
    assert await store.release_orphans(crashed) == 3
