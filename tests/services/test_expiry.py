"""Unpaid orders expire after the market's payment window; crashed checkouts give stock back."""

from __future__ import annotations

from kernel.cart import Address
from kernel.inventory import Reservation
from kernel.services import carts, orders
from kernel.services.checkout import checkout


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _cart(ctx, sku: str, quantity: int):
    cart = await carts.create_cart(ctx, "DE", "web", None)
    await carts.add_line(ctx, cart.id, sku, quantity)
    await carts.set_address(ctx, cart.id, Address(country="DE", city="Berlin"))
    options = await carts.delivery_options(ctx, cart.id)
    return await carts.set_delivery(ctx, cart.id, next(o.id for o in options if o.kind == "ship"))


async def _available(ctx, sku: str) -> int:
    stock = await ctx.store.get_stock([sku], [loc.id for loc in await ctx.locations("DE")])
    return sum(level.available for level in stock.values())


async def test_unpaid_bank_transfer_expires_after_the_window_and_releases_stock(niaga):
    clock = Clock(1_800_000_000.0)
    niaga.clock = clock
    sku = "TEA-JAVA-BLACK"
    before = await _available(niaga, sku)
    cart = await _cart(niaga, sku, 3)
    order, _ = await checkout(niaga, cart.id, {"method": "bank-transfer"}, "bt-1", "h")
    assert order.status == "pending_payment"
    assert order.payment.instructions  # the customer is told where to pay
    assert await _available(niaga, sku) == before - 3
    window = niaga.market("DE").payment_window_hours * 3600

    clock.now += window - 60  # not yet
    assert (await orders.sweep(niaga))["orders_expired"] == 0
    clock.now += 120
    assert (await orders.sweep(niaga))["orders_expired"] == 1
    expired = await orders.load_order(niaga, order.id)
    assert expired.status == "cancelled"
    assert expired.history[-1].event == "expired"
    assert await _available(niaga, sku) == before
    # a late payment confirmation cannot revive it
    assert (await orders.sweep(niaga))["orders_expired"] == 0


async def test_marked_paid_in_time_never_expires(niaga):
    clock = Clock(1_800_000_000.0)
    niaga.clock = clock
    cart = await _cart(niaga, "TEA-JAVA-BLACK", 1)
    order, _ = await checkout(niaga, cart.id, {"method": "bank-transfer"}, "bt-2", "h")
    await orders.mark_paid(niaga, order.id, "SEPA-1")
    clock.now += 30 * 24 * 3600
    assert (await orders.sweep(niaga))["orders_expired"] == 0
    assert (await orders.load_order(niaga, order.id)).status == "paid"


async def test_a_checkout_that_died_after_reserving_is_released_by_the_sweeper(niaga):
    clock = Clock(1_800_000_000.0)
    niaga.clock = clock
    sku = "COFFEE-GAYO-250"
    before = await _available(niaga, sku)
    warehouse = next(loc.id for loc in await niaga.locations("DE") if loc.kind == "warehouse")
    # what checkout does before it authorizes; then the process "dies"
    await niaga.store.reserve([Reservation(order_id="crashed-order", sku=sku,
                                           location_id=warehouse, quantity=2,
                                           expires_at=clock.now + 15 * 60)], "DE", [])
    assert await _available(niaga, sku) == before - 2
    assert (await orders.sweep(niaga))["units_released"] == 0  # still within its hold
    clock.now += 16 * 60
    assert (await orders.sweep(niaga))["units_released"] == 2
    assert await _available(niaga, sku) == before


async def test_a_payment_answered_after_the_stock_hold_places_no_order(niaga, monkeypatch):
    """The sweeper may give back a hold past its window; an order must not stand on it."""
    import pytest

    from kernel.errors import Conflict
    from kernel.services import checkout as checkout_service
    from plugins.payments.testpay import TestPay

    clock = Clock(1_800_000_000.0)
    niaga.clock = clock
    sku = "TEA-JAVA-BLACK"
    before = await _available(niaga, sku)
    cart = await _cart(niaga, sku, 2)
    authorize = checkout_service._authorize
    hold = niaga.market("DE").reservation_minutes * 60

    async def slow_gateway(*args, **kwargs):
        result = await authorize(*args, **kwargs)
        clock.now += hold - checkout_service.HOLD_MARGIN + 1  # answered just too late
        return result

    monkeypatch.setattr(checkout_service, "_authorize", slow_gateway)
    with pytest.raises(Conflict) as info:
        await checkout(niaga, cart.id, {"method": "testpay", "token": "tok_ok"}, "late-1", "h")
    assert "stock hold" in str(info.value)
    assert await niaga.store.get_order_by_cart(cart.id) is None
    assert await _available(niaga, sku) == before, "the hold was released at once"
    assert TestPay.calls_of("void") or TestPay.calls_of("refund"), "the payment was undone"
    assert (await niaga.store.get_cart(cart.id)).status == "open"


async def test_a_one_minute_hold_still_lets_a_prompt_payment_through(niaga, monkeypatch):
    """The margin shrinks with a short window: it must never swallow the whole hold."""
    import msgspec

    from kernel.services import checkout as checkout_service

    clock = Clock(1_800_000_000.0)
    niaga.clock = clock
    niaga.markets["DE"] = msgspec.structs.replace(niaga.markets["DE"], reservation_minutes=1.0)
    cart = await _cart(niaga, "TEA-JAVA-BLACK", 1)
    authorize = checkout_service._authorize

    async def one_second_gateway(*args, **kwargs):
        result = await authorize(*args, **kwargs)
        clock.now += 1.0
        return result

    monkeypatch.setattr(checkout_service, "_authorize", one_second_gateway)
    order, created = await checkout(niaga, cart.id, {"method": "testpay", "token": "tok_ok"},
                                    "short-1", "h")
    assert created and order.status == "paid"
