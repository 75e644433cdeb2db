"""Storage contract: counting recent orders per customer, email and card fingerprint, per
window, in one read (the velocity rules' history); erasure forgets the email and card."""

from __future__ import annotations

import msgspec

from kernel.orders import Order

HOUR = 3600.0


async def _place(store, build, *, at: float, customer: str | None = None,
                 email: str | None = None, card: str | None = None) -> Order:
    cart = build.cart(customer_id=customer, now=at - 10)
    await store.create_cart(cart)
    order = msgspec.structs.replace(build.order(cart, created_at=at), email=email,
                                    card_fingerprint=card)
    await store.place_order(order, build.closed(cart, at), cart.version, [])
    return order


async def test_counts_per_window_and_key_in_one_read(store, build):
    now = build.T0
    await _place(store, build, at=now - 0.5 * HOUR, customer="c1", email="a@x.io", card="k1")
    await _place(store, build, at=now - 2 * HOUR, customer="c1", email="b@x.io", card="k1")
    await _place(store, build, at=now - 20 * HOUR, customer=None, email="a@x.io", card="k2")
    await _place(store, build, at=now - 30 * HOUR, customer="c1", email="a@x.io", card="k1")
    await _place(store, build, at=now - 0.1 * HOUR, customer="c2", email="z@x.io", card="k9")
    counts = await store.count_recent_orders([now - HOUR, now - 24 * HOUR],
                                             customer_id="c1", email="a@x.io",
                                             card_fingerprint="k1")
    assert counts == [{"customer": 1, "email": 1, "card": 1},
                      {"customer": 2, "email": 2, "card": 2}]


async def test_missing_keys_count_zero_and_no_window_reads_nothing(store, build):
    now = build.T0
    await _place(store, build, at=now - 60, customer=None, email=None, card=None)
    assert await store.count_recent_orders([now - HOUR], customer_id=None, email=None,
                                           card_fingerprint=None) == [
        {"customer": 0, "email": 0, "card": 0}]
    assert await store.count_recent_orders([], customer_id="c1", email="a@x.io",
                                           card_fingerprint="k1") == []
    await _place(store, build, at=now - 60, customer=None, email="a@x.io", card=None)
    assert await store.count_recent_orders([now - HOUR], customer_id=None, email="a@x.io",
                                           card_fingerprint=None) == [
        {"customer": 0, "email": 1, "card": 0}]


async def test_erasing_a_customer_forgets_the_email_and_card_of_their_orders(store, build):
    now = build.T0
    customer = build.customer("erika@example.com")
    await store.create_customer(customer)
    order = await _place(store, build, at=now - 60, customer=customer.id,
                         email="erika@example.com", card="k1")
    erased = msgspec.structs.replace(order, email=None, card_fingerprint=None)
    customer.email = None
    await store.erase_customer(customer, [], [erased])
    assert await store.count_recent_orders([now - HOUR], customer_id=None,
                                           email="erika@example.com",
                                           card_fingerprint="k1") == [
        {"customer": 0, "email": 0, "card": 0}]
    stored = await store.get_order(order.id)
    assert stored.email is None and stored.card_fingerprint is None


async def test_a_store_from_before_these_columns_gets_them_at_create_schema(store, build):
    """SQL adapters: ``create_schema`` on an older database adds the new nullable columns
    (and their indexes), so ``niaga serve`` upgrades an existing file or database."""
    orders = store.t.order
    for column in ("email", "card_fingerprint"):
        await orders.raw(f"DROP INDEX IF EXISTS niaga_order_{column}")
        await orders.raw(f"ALTER TABLE niaga_order DROP COLUMN {column}")
    await store.create_schema()
    order = await _place(store, build, at=build.T0 - 60, customer=None, email="a@x.io",
                         card="k1")
    assert await store.count_recent_orders([build.T0 - HOUR], customer_id=None,
                                           email="a@x.io", card_fingerprint="k1") == [
        {"customer": 0, "email": 1, "card": 1}]
    assert (await store.get_order(order.id)).email == "a@x.io"
    if store.name == "postgresql":
        rows = await orders.raw("SELECT indexname AS name FROM pg_indexes "
                           "WHERE tablename = 'niaga_order'")
    else:
        rows = await orders.raw("PRAGMA index_list(niaga_order)")
    assert {"niaga_order_email", "niaga_order_card_fingerprint"} <= {r["name"] for r in rows}
