"""Storage contract: placing orders atomically, version-conditioned order changes with their
stock effects and idempotency records, order queries."""

from __future__ import annotations

import msgspec
import pytest

from kernel.errors import Conflict, VersionConflict
from kernel.orders import Allocated, Order
from kernel.store.base import IdempotencyRecord, StockEffects

WH = "de-lej-wh"


def _next(order: Order, at: float, status: str | None = None, **changes) -> Order:
    """The order's next version, as the services build it."""
    new = msgspec.structs.replace(order, version=order.version + 1, **changes)
    new.history = [*order.history]
    if status is not None:
        new.move_to(status, at, status)  # type: ignore[arg-type]
    else:
        new.record(at, "note")
    return new


async def _reserved(store, build, sku="SKU-A", loc=WH) -> tuple[int, int]:
    level = await build.level(store, sku, loc)
    return level.on_hand, level.reserved


# place_order -------------------------------------------------------------------------


async def test_place_order_writes_order_closes_cart_and_writes_events(store, build):
    cart = build.cart(customer_id="cust-1", quantity=2)
    await store.create_cart(cart)
    order = build.order(cart, created_at=build.T0 + 10)
    closed = build.closed(cart, build.T0 + 10)
    events = [build.event("order.placed", order.id, build.T0 + 10, number=order.number),
              build.event("order.paid", order.id, build.T0 + 11, number=order.number)]

    await store.place_order(order, closed, cart.version, events)

    assert await store.get_order(order.id) == order
    assert await store.get_order_by_cart(cart.id) == order
    assert await store.get_cart(cart.id) == closed
    assert (await store.get_cart(cart.id)).status == "checked_out"
    assert await store.pending_events() == events
    assert await store.list_orders() == [order]


async def test_a_second_order_for_the_same_cart_is_a_conflict(store, build):
    first, closed = await build.placed(store, events=[])
    cart = await store.get_cart(first.cart_id)
    twin = build.order(cart, status="paid")  # another order id, same cart
    twin_event = build.event("order.placed", twin.id, build.T0)

    with pytest.raises(Conflict) as info:
        await store.place_order(twin, build.closed(cart), cart.version, [twin_event])
    assert not isinstance(info.value, VersionConflict), "the cart version matched"

    assert await store.get_order(twin.id) is None
    assert await store.get_order_by_cart(cart.id) == first
    assert await store.list_orders() == [first]
    assert await store.get_cart(cart.id) == closed  # not re-closed at a newer version
    assert await store.pending_events() == []


async def test_place_order_with_a_stale_cart_writes_nothing(store, build):
    cart = build.cart()
    await store.create_cart(cart)
    edited = msgspec.structs.replace(cart, version=2, updated_at=build.T0 + 1, lines=[])
    await store.save_cart(edited, expected_version=1)  # another channel changed it

    order = build.order(cart)
    with pytest.raises(VersionConflict):
        await store.place_order(order, build.closed(cart), cart.version,
                                [build.event("order.placed", order.id, build.T0)])

    assert await store.get_order(order.id) is None
    assert await store.get_order_by_cart(cart.id) is None
    assert await store.list_orders() == []
    assert await store.pending_events() == []
    assert await store.get_cart(cart.id) == edited


# save_order -------------------------------------------------------------------------


async def test_save_order_is_version_conditioned(store, build):
    await store.set_stock("SKU-A", WH, 5, "count", build.T0)
    order, _ = await build.placed(store, reservations=[("SKU-A", WH, 2)])
    v2 = _next(order, build.T0 + 1)
    await store.save_order(v2, order.version, [build.event("order.paid", order.id, build.T0)])
    assert await store.get_order(order.id) == v2
    events_before = await store.pending_events()

    stale = _next(order, build.T0 + 2, "cancelled")  # built from version 1
    record = IdempotencyRecord(scope=f"cancel:{order.id}", key="k-stale", request_hash="h",
                               status=200, body=b"{}")
    with pytest.raises(VersionConflict):
        await store.save_order(stale, order.version,
                               [build.event("order.cancelled", order.id, build.T0 + 2)],
                               StockEffects(release=True,
                                            fulfil=[Allocated(sku="SKU-A", location_id=WH,
                                                              quantity=1)],
                                            restock=[Allocated(sku="SKU-A", location_id=WH,
                                                               quantity=3)]),
                               record)

    assert await store.get_order(order.id) == v2
    assert await store.pending_events() == events_before
    assert await _reserved(store, build) == (5, 2)
    assert await store.get_idempotency(f"cancel:{order.id}", "k-stale") is None


async def test_save_order_release_gives_back_reserved_units_once(store, build):
    await store.set_stock("SKU-A", WH, 5, "count", build.T0)
    await store.set_stock("SKU-B", WH, 3, "count", build.T0)
    order, _ = await build.placed(store, reservations=[("SKU-A", WH, 2), ("SKU-B", WH, 3)])
    assert await _reserved(store, build) == (5, 2)

    cancelled = _next(order, build.T0 + 1, "cancelled")
    event = build.event("order.cancelled", order.id, build.T0 + 1)
    await store.save_order(cancelled, order.version, [event], StockEffects(release=True))

    assert await store.get_order(order.id) == cancelled
    assert await _reserved(store, build) == (5, 0)
    assert await _reserved(store, build, "SKU-B") == (3, 0)
    assert event in await store.pending_events()
    # released units are not released again, by another save or by the sweeper
    await store.save_order(_next(cancelled, build.T0 + 2), cancelled.version, [],
                           StockEffects(release=True))
    assert await store.release_orphans(order.id) == 0
    assert await _reserved(store, build) == (5, 0)
    assert await _reserved(store, build, "SKU-B") == (3, 0)


async def test_save_order_fulfil_takes_units_out_then_release_returns_only_the_rest(store,
                                                                                   build):
    await store.set_stock("SKU-A", WH, 10, "count", build.T0)
    order, _ = await build.placed(store, reservations=[("SKU-A", WH, 3)])

    shipped = _next(order, build.T0 + 1, "partially_fulfilled")
    await store.save_order(shipped, order.version, [], StockEffects(
        fulfil=[Allocated(sku="SKU-A", location_id=WH, quantity=2)]))
    assert await _reserved(store, build) == (8, 1)

    cancelled = _next(shipped, build.T0 + 2, "cancelled")
    await store.save_order(cancelled, shipped.version, [], StockEffects(release=True))
    assert await _reserved(store, build) == (8, 0)  # the one unit not shipped
    assert await store.get_order(order.id) == cancelled


async def test_save_order_restock_puts_returned_units_back(store, build):
    await store.set_stock("SKU-A", WH, 10, "count", build.T0)
    order, _ = await build.placed(store, reservations=[("SKU-A", WH, 2)])
    fulfilled = _next(order, build.T0 + 1, "fulfilled")
    await store.save_order(fulfilled, order.version, [], StockEffects(
        fulfil=[Allocated(sku="SKU-A", location_id=WH, quantity=2)]))
    assert await _reserved(store, build) == (8, 0)

    returned = _next(fulfilled, build.T0 + 2, "partially_returned")
    await store.save_order(returned, fulfilled.version,
                           [build.event("order.returned", order.id, build.T0 + 2)],
                           StockEffects(restock=[Allocated(sku="SKU-A", location_id=WH,
                                                           quantity=1)]))
    assert await _reserved(store, build) == (9, 0)
    assert await store.get_order(order.id) == returned


async def test_save_order_writes_the_idempotency_record(store, build):
    order, _ = await build.placed(store, status="authorized")
    paid = _next(order, build.T0 + 1, "paid")
    body = msgspec.json.encode(paid)
    record = IdempotencyRecord(scope=f"capture:{order.id}", key="Key-1 ☃", request_hash="a" * 64,
                               status=200, body=body)

    await store.save_order(paid, order.version, [], idempotency=record)

    assert await store.get_idempotency(f"capture:{order.id}", "Key-1 ☃") == record
    assert msgspec.json.decode((await store.get_idempotency(record.scope, record.key)).body,
                               type=Order) == paid
    assert await store.get_idempotency(f"capture:{order.id}", "key-1 ☃") is None
    assert await store.get_idempotency(f"return:{order.id}", "Key-1 ☃") is None
    assert await store.get_idempotency("capture:other", "Key-1 ☃") is None


async def test_save_order_without_effects_leaves_stock_alone(store, build):
    await store.set_stock("SKU-A", WH, 4, "count", build.T0)
    order, _ = await build.placed(store, reservations=[("SKU-A", WH, 4)])
    v2 = _next(order, build.T0 + 1)
    await store.save_order(v2, order.version, [])
    await store.save_order(_next(v2, build.T0 + 2), v2.version, [], StockEffects())
    assert await _reserved(store, build) == (4, 4)
    assert (await store.get_order(order.id)).version == 3


# queries ------------------------------------------------------------------------------


async def test_list_orders_newest_first_filtered_by_customer_and_time(store, build):
    t = build.T0
    o10, _ = await build.placed(store, customer_id="cust-1", created_at=t + 10)
    o30, _ = await build.placed(store, customer_id="cust-1", created_at=t + 30)
    o20, _ = await build.placed(store, customer_id="cust-2", created_at=t + 20)
    o40, _ = await build.placed(store, customer_id=None, created_at=t + 40)

    def ids(orders):
        return [o.id for o in orders]

    assert await store.list_orders() == [o40, o30, o20, o10]
    assert ids(await store.list_orders(customer_id="cust-1")) == [o30.id, o10.id]
    assert ids(await store.list_orders(customer_id="cust-2")) == [o20.id]
    assert await store.list_orders(customer_id="nobody") == []
    # [since, until): since is inclusive, until exclusive
    assert ids(await store.list_orders(since=t + 20)) == [o40.id, o30.id, o20.id]
    assert ids(await store.list_orders(until=t + 30)) == [o20.id, o10.id]
    assert ids(await store.list_orders(since=t + 15, until=t + 35)) == [o30.id, o20.id]
    assert ids(await store.list_orders(customer_id="cust-1", since=t + 11)) == [o30.id]
    assert await store.list_orders(since=t + 41) == []
    assert ids(await store.list_orders(limit=2)) == [o40.id, o30.id]


async def test_list_orders_sees_the_latest_version(store, build):
    order, _ = await build.placed(store, customer_id="cust-1")
    newer = _next(order, build.T0 + 1, "cancelled")
    await store.save_order(newer, order.version, [])
    assert await store.list_orders(customer_id="cust-1") == [newer]


async def test_unpaid_orders_due(store, build):
    t = build.T0
    due, _ = await build.placed(store, status="pending_payment", created_at=t,
                                payment_due_at=t + 100)
    later, _ = await build.placed(store, status="pending_payment", created_at=t + 1,
                                  payment_due_at=t + 1000)
    await build.placed(store, status="paid", created_at=t + 2)
    await build.placed(store, status="authorized", created_at=t + 3)

    assert await store.unpaid_orders_due(t) == []
    assert [o.id for o in await store.unpaid_orders_due(t + 500)] == [due.id]
    assert sorted(o.id for o in await store.unpaid_orders_due(t + 2000)) == sorted(
        [due.id, later.id])
    assert len(await store.unpaid_orders_due(t + 2000, limit=1)) == 1

    # paid (webhook) and cancelled (expiry) orders are no longer due
    paid = _next(due, t + 50, "paid", payment_due_at=None)
    await store.save_order(paid, due.version, [])
    cancelled = _next(later, t + 60, "cancelled", payment_due_at=None)
    await store.save_order(cancelled, later.version, [])
    assert await store.unpaid_orders_due(t + 2000) == []


async def test_unpaid_orders_due_follows_a_changed_due_date(store, build):
    t = build.T0
    order, _ = await build.placed(store, status="pending_payment", created_at=t,
                                  payment_due_at=t + 100)
    extended = _next(order, t + 1, payment_due_at=t + 5000)
    await store.save_order(extended, order.version, [])
    assert await store.unpaid_orders_due(t + 200) == []
    assert await store.unpaid_orders_due(t + 6000) == [extended]


async def test_get_order_of_unknown_ids(store, build):
    assert await store.get_order("nope") is None
    assert await store.get_order_by_cart("nope") is None
    assert await store.list_orders() == []
    assert await store.unpaid_orders_due(build.T0 + 10**9) == []
