"""The loyalty service off HTTP: markets without a programme, failures, the reversal rules."""

from __future__ import annotations

import logging

import msgspec
import pytest

from kernel import hookimpl
from kernel.cart import Address
from kernel.errors import ValidationError
from kernel.loyalty import LedgerEntry
from kernel.markets import parse_markets
from kernel.money import Money
from kernel.plugins import Registry
from kernel.runtime import Niaga
from kernel.services import carts, loyalty
from kernel.services.checkout import checkout
from kernel.services.customers import create_customer
from plugins.loyalty.points import Points


class BrokenEarn(Points):
    """The points plugin with a bug in earning."""

    name = "broken-points"

    @hookimpl
    def niaga_loyalty_earn(self, order, market, lifetime_base_points):
        raise RuntimeError("boom")


@pytest.fixture
async def ctx(store, markets):
    """DE without any loyalty plugin; JP with one that fails to earn."""
    from kernel.demo import seed

    raw = {code: {"name": m.name, "currency": m.currency, "locales": list(m.locales),
                  "prices_include_tax": m.prices_include_tax, "countries": list(m.countries),
                  "plugins": dict(m.plugins)} for code, m in markets.items()}
    del raw["DE"]["plugins"]["points"]
    raw["JP"]["plugins"]["broken-points"] = raw["JP"]["plugins"].pop("points")
    niaga = Niaga(store, parse_markets({"markets": raw}),
                  registry=Registry({"broken-points": BrokenEarn}))
    await seed(store, niaga.markets, niaga.clock())
    yield niaga
    await niaga.dispatcher.stop()


async def _paid_order(ctx, market: str, sku: str, customer):
    cart = await carts.create_cart(ctx, market, "web", customer)
    await carts.add_line(ctx, cart.id, sku, 1)
    await carts.set_address(ctx, cart.id, Address(country=market, city="X", region="X"))
    option = next(o for o in await carts.delivery_options(ctx, cart.id) if o.kind == "ship")
    await carts.set_delivery(ctx, cart.id, option.id)
    order, _ = await checkout(ctx, cart.id, {"method": "testpay", "token": "tok_ok"},
                              f"k-{cart.id}", "h")
    return order


async def test_a_market_without_a_programme_quotes_and_earns_nothing(ctx):
    customer, _ = await create_customer(ctx, "ohne@example.com", None)
    await ctx.store.loyalty_apply([LedgerEntry(id="g", customer_id=customer.id, points=500,
                                               kind="adjust")])
    cart = await carts.create_cart(ctx, "DE", "web", customer)
    await carts.add_line(ctx, cart.id, "TEA-JAVA-BLACK", 1)
    with pytest.raises(ValidationError, match="no loyalty programme in market DE"):
        await carts.use_loyalty(ctx, cart.id, customer, 100)
    await _paid_order(ctx, "DE", "TEA-JAVA-BLACK", customer)
    await ctx.dispatcher.drain()
    assert [e.id for e in await ctx.store.loyalty_ledger(customer.id)] == ["g"]
    # the balance is still one across markets: Indonesia runs the programme
    summary = await loyalty.account_summary(ctx, customer.id, "DE")
    assert summary == {"balance": 500, "lifetime_points": 0, "tier": None, "market": "DE"}
    assert (await loyalty.account_summary(ctx, customer.id))["market"] == "ID"


async def test_a_plugin_that_fails_to_earn_is_logged_and_the_outbox_moves_on(ctx, caplog):
    customer, _ = await create_customer(ctx, "kaputt@example.com", None)
    order = await _paid_order(ctx, "JP", "TEA-JAVA-BLACK", customer)
    with caplog.at_level(logging.ERROR, logger="niaga.loyalty"):
        await ctx.dispatcher.drain()
    assert order.id in caplog.text
    assert await ctx.store.loyalty_ledger(customer.id) == []
    assert await ctx.store.pending_events() == []


async def test_a_store_failure_leaves_the_event_for_the_next_drain(ctx, monkeypatch):
    # only this test's drains deliver: the background relay that a checkout kicks would race
    # them (under load it ran after the monkeypatch and swallowed the failure)
    ctx.dispatcher.in_process = False
    customer, _ = await create_customer(ctx, "retry@example.com", None)
    order = await _paid_order(ctx, "ID", "TEA-JAVA-BLACK", customer)
    real = ctx.store.loyalty_apply
    calls = []

    async def flaky(entries):
        calls.append(entries)
        if len(calls) == 1:
            raise ConnectionError("database went away")
        return await real(entries)

    monkeypatch.setattr(ctx.store, "loyalty_apply", flaky)
    with pytest.raises(ConnectionError):
        await ctx.dispatcher.drain()
    pending = await ctx.store.pending_events()
    assert "order.paid" in [e.type for e in pending]  # not lost: still in the outbox
    assert all(e.type != "order.placed" for e in pending)  # what came before was delivered
    await ctx.dispatcher.drain()
    assert await ctx.store.pending_events() == []
    [earn] = await ctx.store.loyalty_ledger(customer.id)
    assert earn.id == f"earn:{order.id}" and earn.points > 0


def _order(total: int, shipping: int = 0):
    from kernel.markets import MoneyPolicy
    from kernel.orders import Order, Payment

    zero = Money.zero("EUR")
    return Order(id="o-1", number="DE-1", cart_id="c-1", market="DE", channel="web",
                 channels=["web"], customer_id="cust", currency="EUR", status="paid", lines=[],
                 address=None, delivery=None, loyalty=None, subtotal=Money(total - shipping,
                                                                           "EUR"),
                 discount_total=zero, shipping_total=Money(shipping, "EUR"), tax_total=zero,
                 total=Money(total, "EUR"), prices_include_tax=True, money_policy=MoneyPolicy(),
                 adjustments=[], payment=Payment(method="t", gateway="t", status="captured",
                                                 authorized=zero, captured=zero, refunded=zero),
                 allocations=[], created_at=0.0)


def _e(kind: str, points: int, base: int = 0, id: str | None = None) -> LedgerEntry:
    return LedgerEntry(id=id or f"{kind}:x", customer_id="cust", points=points, kind=kind,
                       order_id="o-1", base_points=base)


def test_reversal_rules():
    order = _order(10_490, shipping=490)  # goods 100.00
    earned = [_e("redeem", -200), _e("earn", 100, 80)]
    full = loyalty.reversal(order, "ev1", earned, balance=1000, full=True)
    assert [(e.id, e.kind, e.points, e.base_points) for e in full] == [
        ("refund_redeem:ev1", "refund_redeem", 200, 0),
        ("reverse_earn:ev1", "reverse_earn", -100, -80)]
    # a partial return of 25.00 of 100.00 goods: a quarter of the earn, rounded down
    part = loyalty.reversal(order, "ev2", earned, balance=1000, full=False, refund=2_500)
    assert [(e.kind, e.points, e.base_points) for e in part] == [("reverse_earn", -25, -20)]
    # then the rest comes back: what is left of the earn, and the redeemed points
    later = loyalty.reversal(order, "ev3", earned + part, balance=1000, full=True)
    assert [(e.kind, e.points, e.base_points) for e in later] == [
        ("refund_redeem", 200, 0), ("reverse_earn", -75, -60)]
    # spent points: only what the balance holds (plus what the refund gives back) is taken
    short = loyalty.reversal(order, "ev4", earned, balance=0, full=False, refund=10_000)
    assert [(e.points, e.base_points) for e in short] == [(0, -80)]
    assert "100 of 100 points were already spent" in short[0].note
    short = loyalty.reversal(order, "ev5", earned, balance=0, full=True)
    assert [e.points for e in short] == [200, -100]  # the refund covers it
    # nothing earned, nothing redeemed: nothing to do
    assert loyalty.reversal(order, "ev6", [], balance=5, full=True) == []
    assert loyalty.reversal(order, "ev7", earned, balance=5, full=False, refund=0) == []


def test_redemption_needs_points_and_a_customer():
    from kernel.cart import LoyaltyUse

    order = _order(1000)
    assert loyalty.redemption(order) == []
    use = LoyaltyUse(points=300, discount=Money(300, "EUR"), source="points")
    order = msgspec.structs.replace(order, loyalty=use)
    [entry] = loyalty.redemption(order)
    assert (entry.id, entry.points, entry.kind, entry.order_id) == ("redeem:o-1", -300,
                                                                    "redeem", "o-1")
    with pytest.raises(ValidationError):
        loyalty.redemption(msgspec.structs.replace(order, customer_id=None))
