"""Storage contract: customers, their lookups and erasure."""

from __future__ import annotations

import msgspec
import pytest

from kernel.errors import Conflict


async def test_create_and_look_up_a_customer(store, build):
    customer = build.customer("erika@example.com", token_hash="f" * 64)
    await store.create_customer(customer)

    assert await store.get_customer(customer.id) == customer
    assert await store.get_customer_by_token("f" * 64) == customer
    assert await store.get_customer_by_email("erika@example.com") == customer

    assert await store.get_customer("nobody") is None
    assert await store.get_customer_by_token("0" * 64) is None
    assert await store.get_customer_by_email("max@example.com") is None


async def test_a_taken_email_is_a_conflict_naming_the_field(store, build):
    first = build.customer("erika@example.com")
    await store.create_customer(first)
    twin = build.customer("erika@example.com", name="Someone Else")

    with pytest.raises(Conflict) as info:
        await store.create_customer(twin)
    assert [e["field"] for e in info.value.errors] == ["email"]
    assert await store.get_customer(twin.id) is None
    assert await store.get_customer_by_token(twin.token_hash) is None
    assert await store.get_customer_by_email("erika@example.com") == first


async def test_customers_without_an_email_do_not_collide(store, build):
    a, b = build.customer(None), build.customer(None)
    await store.create_customer(a)
    await store.create_customer(b)
    assert await store.get_customer(a.id) == a
    assert await store.get_customer(b.id) == b


async def test_erase_customer_writes_the_anonymised_documents(store, build):
    customer = build.customer("erika@example.com", token_hash="e" * 64)
    await store.create_customer(customer)
    open_cart = build.cart(customer_id=customer.id)
    await store.create_cart(open_cart)
    order, closed = await build.placed(store, customer_id=customer.id)
    other, _ = await build.placed(store, customer_id="someone-else")
    assert order.address is not None and order.address.email == "erika@example.com"

    erased = msgspec.structs.replace(customer, email=None, name=None, token_hash=None,
                                     erased=True)
    carts = [msgspec.structs.replace(c, address=None) for c in (open_cart, closed)]
    anonymous_order = msgspec.structs.replace(
        order, address=msgspec.structs.replace(order.address, name=None, email=None,
                                               phone=None, line1=None, postal_code=None))
    anonymous_order.record(build.T0 + 99, "customer_erased")
    await store.erase_customer(erased, carts, [anonymous_order])

    assert await store.get_customer(customer.id) == erased
    assert await store.get_customer_by_email("erika@example.com") is None
    assert await store.get_customer_by_token("e" * 64) is None
    assert await store.get_cart(open_cart.id) == carts[0]
    assert await store.get_cart(closed.id) == carts[1]
    assert await store.get_order(order.id) == anonymous_order
    assert await store.list_orders(customer_id=customer.id) == [anonymous_order]
    assert await store.get_order(other.id) == other  # nobody else's data is touched

    # the order stays an order: later changes still work on it
    assert anonymous_order.version == order.version

    # the email is free again
    again = build.customer("erika@example.com")
    await store.create_customer(again)
    assert await store.get_customer_by_email("erika@example.com") == again
