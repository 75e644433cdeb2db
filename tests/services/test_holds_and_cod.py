"""Orders held for review by a risk rule, and cash on delivery: shipped first, paid at the door."""

from __future__ import annotations

import pytest

from kernel import Veto, hookimpl
from kernel.cart import Address
from kernel.errors import Conflict, ValidationError
from kernel.markets import parse_markets
from kernel.plugins import Registry
from kernel.runtime import Niaga
from kernel.services import carts, orders
from kernel.services.checkout import checkout


class HoldBigOrders:
    name = "hold-big"
    family = "risk"

    def __init__(self, market):
        self.market = market

    @hookimpl
    def niaga_before_place_order(self, cart, market):
        units = sum(line.quantity for line in cart.lines)
        return Veto("review-quantity", "more than 3 units", hold=True) if units > 3 else None


@pytest.fixture
async def ctx(store, markets):
    from kernel.demo import seed

    raw = {code: {"name": m.name, "currency": m.currency, "locales": list(m.locales),
                  "prices_include_tax": m.prices_include_tax, "countries": list(m.countries),
                  "plugins": dict(m.plugins)} for code, m in markets.items()}
    raw["ID"]["plugins"].update({"cod": {"max_amount": "5000000"}, "hold-big": {}})
    with_cod = parse_markets({"markets": raw})
    niaga = Niaga(store, with_cod, registry=Registry({"hold-big": HoldBigOrders}))
    await seed(store, with_cod, niaga.clock())
    yield niaga
    await niaga.dispatcher.stop()


async def _cart(ctx, quantity: int, kind: str = "ship"):
    cart = await carts.create_cart(ctx, "ID", "social", None)
    await carts.add_line(ctx, cart.id, "SARONG-TENUN", quantity)
    await carts.set_address(ctx, cart.id, Address(country="ID", city="Jakarta"))
    option = next(o for o in await carts.delivery_options(ctx, cart.id) if o.kind == kind)
    return await carts.set_delivery(ctx, cart.id, option.id)


async def test_a_held_order_waits_for_a_person_then_goes_on_paid(ctx):
    cart = await _cart(ctx, 4)
    order, _ = await checkout(ctx, cart.id, {"method": "testpay", "token": "tok_ok"}, "k", "h")
    assert order.status == "on_hold"
    assert order.hold == {"rule": "review-quantity", "reason": "more than 3 units"}
    assert order.payment.status == "captured"  # the money is held with the order
    with pytest.raises(Conflict):
        await orders.fulfil(ctx, order.id, None, None, None)  # nothing ships while held
    released = await orders.release_hold(ctx, order.id, "called the customer")
    assert released.status == "paid" and released.hold is None
    assert [h.event for h in released.history] == ["placed", "held", "released"]
    await ctx.dispatcher.drain()


async def test_a_held_order_can_be_cancelled_and_refunded(ctx):
    cart = await _cart(ctx, 5)
    order, _ = await checkout(ctx, cart.id, {"method": "testpay", "token": "tok_ok"}, "k", "h")
    cancelled = await orders.cancel(ctx, order.id, "fraud confirmed")
    assert cancelled.status == "cancelled"
    assert cancelled.payment.refunded == cancelled.payment.captured == cancelled.total


async def test_cash_on_delivery_ships_unpaid_never_expires_and_is_paid_at_the_door(ctx):
    cart = await _cart(ctx, 1)
    order, _ = await checkout(ctx, cart.id, {"method": "cod"}, "cod-1", "h")
    assert order.status == "pending_payment" and order.payment.status == "pending"
    assert order.payment_due_at is None and order.payment.ship_unpaid
    ctx.clock = lambda: 10**12  # centuries later: still not expired
    assert (await orders.sweep(ctx))["orders_expired"] == 0
    shipped = await orders.fulfil(ctx, order.id, None, None, None)
    assert shipped.status == "fulfilled"
    paid = await orders.mark_paid(ctx, order.id, "courier collected")
    assert paid.status == "fulfilled"
    assert paid.payment.status == "captured" and paid.payment.captured == paid.total


async def test_a_refused_cod_parcel_refunds_nothing(ctx):
    cart = await _cart(ctx, 2)
    order, _ = await checkout(ctx, cart.id, {"method": "cod"}, "cod-2", "h")
    await orders.fulfil(ctx, order.id, None, None, None)
    back = await orders.return_lines(ctx, order.id, [{"line_id": order.lines[0].id,
                                                      "quantity": 2}], True, "r1", "h")
    assert back.status == "returned"
    assert back.payment.refunded.amount == 0  # no cash was ever collected


async def test_cod_is_not_offered_for_a_pickup_and_checkout_refuses_it(ctx):
    cart = await _cart(ctx, 1, kind="pickup")
    offered = {m.id for m in await carts.payment_methods(ctx, cart.id)}
    assert "cod" not in offered and "testpay" in offered
    with pytest.raises(ValidationError) as refused:
        await checkout(ctx, cart.id, {"method": "cod"}, "cod-3", "h")
    assert refused.value.errors[0]["field"] == "payment.method"
