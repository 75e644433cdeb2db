"""Storage contract: carts as version-conditioned documents."""

from __future__ import annotations

import msgspec
import pytest

from kernel.cart import Delivery
from kernel.errors import VersionConflict
from kernel.ids import new_id
from kernel.money import Money


def _bumped(cart, now, **changes):
    return msgspec.structs.replace(cart, version=cart.version + 1, updated_at=now, **changes)


async def test_create_and_get_round_trip(store, build):
    cart = build.cart(customer_id="cust-1", sku="SKU-A", quantity=3)
    cart.delivery = Delivery(option_id="flat-rate:standard", kind="ship", carrier="flat-rate",
                             label="DHL Paket", price=Money(490, "EUR"))
    cart.channels = ["web", "pos"]
    await store.create_cart(cart)

    assert await store.get_cart(cart.id) == cart
    assert await store.get_cart("no-such-cart") is None


async def test_save_cart_with_the_current_version_bumps_it(store, build):
    cart = build.cart()
    await store.create_cart(cart)

    v2 = _bumped(cart, build.T0 + 1)
    v2.lines[0].quantity = 4
    await store.save_cart(v2, expected_version=1)
    stored = await store.get_cart(cart.id)
    assert stored == v2
    assert stored.version == 2

    v3 = _bumped(v2, build.T0 + 2, lines=[])
    await store.save_cart(v3, expected_version=2)
    assert await store.get_cart(cart.id) == v3


async def test_save_cart_with_a_stale_version_conflicts_and_changes_nothing(store, build):
    cart = build.cart()
    await store.create_cart(cart)
    v2 = _bumped(cart, build.T0 + 1)
    await store.save_cart(v2, expected_version=1)

    stale = _bumped(cart, build.T0 + 5, lines=[])  # built from version 1
    with pytest.raises(VersionConflict):
        await store.save_cart(stale, expected_version=1)
    with pytest.raises(VersionConflict):  # a version from the future conflicts too
        await store.save_cart(_bumped(v2, build.T0 + 6, lines=[]), expected_version=7)
    assert await store.get_cart(cart.id) == v2


async def test_find_open_cart_returns_the_most_recently_updated_open_cart(store, build):
    older = build.cart(customer_id="cust-1", now=build.T0)
    newer = build.cart(customer_id="cust-1", now=build.T0 + 50)
    for cart in (newer, older):
        await store.create_cart(cart)
    assert (await store.find_open_cart("cust-1", "DE")).id == newer.id

    # touching the older cart makes it the customer's current one
    touched = _bumped(older, build.T0 + 100)
    await store.save_cart(touched, older.version)
    assert await store.find_open_cart("cust-1", "DE") == touched


async def test_find_open_cart_ignores_checked_out_and_other_carts(store, build):
    # the customer's newest cart is checked out: it is not "open"
    order, closed = await build.placed(store, customer_id="cust-1", created_at=build.T0 + 500)
    assert closed.status == "checked_out"
    assert await store.find_open_cart("cust-1", "DE") is None

    open_cart = build.cart(customer_id="cust-1", now=build.T0 + 10)
    await store.create_cart(open_cart)
    # newer carts of another customer, a guest, and the same customer in another market
    await store.create_cart(build.cart(customer_id="cust-2", now=build.T0 + 900))
    await store.create_cart(build.cart(customer_id=None, now=build.T0 + 900))
    await store.create_cart(build.cart(customer_id="cust-1", market="JP", currency="JPY",
                                       now=build.T0 + 900))
    # and one closed with save_cart rather than by an order
    abandoned = build.cart(customer_id="cust-1", now=build.T0 + 800)
    await store.create_cart(abandoned)
    await store.save_cart(build.closed(abandoned, build.T0 + 801), abandoned.version)

    assert await store.find_open_cart("cust-1", "DE") == open_cart
    assert (await store.find_open_cart("cust-1", "JP")).market == "JP"
    assert await store.find_open_cart("cust-3", "DE") is None
    assert order.cart_id == closed.id


async def test_list_carts_lists_every_cart_of_a_customer(store, build):
    mine = [build.cart(customer_id="cust-1", now=build.T0 + i) for i in range(3)]
    for cart in mine:
        await store.create_cart(cart)
    _, closed = await build.placed(store, customer_id="cust-1")
    await store.create_cart(build.cart(customer_id="cust-2"))
    await store.create_cart(build.cart(customer_id=None))

    listed = {c.id: c for c in await store.list_carts("cust-1")}
    assert listed == {**{c.id: c for c in mine}, closed.id: closed}
    assert await store.list_carts("nobody") == []


async def test_a_cart_can_be_attached_to_a_customer_later(store, build):
    guest = build.cart(customer_id=None)
    await store.create_cart(guest)
    assert await store.find_open_cart("cust-9", "DE") is None

    attached = _bumped(guest, build.T0 + 1, customer_id="cust-9")
    await store.save_cart(attached, guest.version)
    assert await store.find_open_cart("cust-9", "DE") == attached
    assert await store.list_carts("cust-9") == [attached]


async def test_carts_are_independent(store, build):
    a, b = build.cart(), build.cart()
    await store.create_cart(a)
    await store.create_cart(b)
    await store.save_cart(_bumped(a, build.T0 + 1, lines=[]), a.version)
    assert await store.get_cart(b.id) == b
    assert await store.get_cart(new_id()) is None
