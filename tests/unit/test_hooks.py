"""Every hook is documented with its semantics, called from exactly one place, and exercised.

The probe plugin implements the hooks no first-party plugin does yet, and the
tests drive them through the real services on a real store (both engines).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import msgspec
import pytest

from kernel import Adjustment, LoyaltyUse, Money, Veto, hookimpl, hookspecs
from kernel.cart import Address
from kernel.errors import Conflict, ValidationError
from kernel.loyalty import LedgerEntry
from kernel.markets import parse_markets
from kernel.plugins import Registry, hook_names
from kernel.runtime import Niaga
from kernel.services import carts, orders
from kernel.services.checkout import checkout
from kernel.services.customers import create_customer

ROOT = Path(__file__).resolve().parents[2]
SEMANTICS = ("first result:", "collect:", "chain:", "notify:")


def test_every_hook_states_its_semantics_and_pluggy_agrees():
    for name in hook_names():
        spec = getattr(hookspecs, name)
        doc = inspect.getdoc(spec) or ""
        assert doc.startswith(SEMANTICS), f"{name}: docstring must start with its semantics"
        firstresult = spec.niaga_spec["firstresult"]
        assert firstresult == doc.startswith("first result:"), name


def test_every_hook_is_called_from_exactly_one_place():
    """Hooks are called by name; each name appears once in the kernel, so one place calls it."""
    sites: dict[str, list[str]] = {}
    for path in (ROOT / "kernel").rglob("*.py"):
        # hookspecs declares them, the store names niaga_* tables, and the test kit calls
        # plugins under test: none of them is a kernel call site
        if path.name in ("hookspecs.py", "testing.py") or "store" in path.parts:
            continue
        for name in re.findall(r'"(niaga_\w+)"', path.read_text()):
            if name == "niaga_impl":  # pluggy's marker attribute, not a hook
                continue
            sites.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert set(sites) <= set(hook_names()), "a call names a hook that does not exist"
    for name in hook_names():
        assert len(sites.get(name, [])) == 1, f"{name} is named at {sites.get(name)}"


def test_every_hook_is_implemented_by_a_tested_plugin():
    implemented = set()
    for folder in ("plugins", "tests", "kernel"):
        for path in (ROOT / folder).rglob("*.py"):
            implemented |= set(re.findall(r"def (niaga_\w+)\(", path.read_text()))
    missing = set(hook_names()) - implemented
    assert not missing, f"hooks no plugin or probe implements: {sorted(missing)}"


class Probe:
    """Implements the hooks the first-party plugins do not, and records what it saw."""

    name = "probe"
    family = "cart"

    def __init__(self, market):
        self.market = market
        self.events: list[str] = []
        self.updated = 0
        self.refuse_cancel = False
        self.catalog: list = []

    @hookimpl
    def niaga_line_price(self, price, product, quantity, cart, market):
        return Money(price.amount * 9 // 10, price.currency) if quantity >= 3 else None

    @hookimpl
    def niaga_validate_cart(self, cart, market):
        if cart.address and cart.address.city == "Nowhere":
            return [{"field": "address.city", "message": "we do not deliver to Nowhere"}]
        return []

    @hookimpl
    def niaga_cart_updated(self, cart, market):
        self.updated += 1

    @hookimpl
    def niaga_cart_discounts(self, cart, market):
        if len(cart.lines) >= 2:
            return [Adjustment(source="probe", kind="discount", label="bundle",
                               amount=Money(100, cart.currency))]
        return []

    @hookimpl
    def niaga_before_place_order(self, cart, market):
        total_units = sum(line.quantity for line in cart.lines)
        return Veto("max-units", "at most 5 units per order") if total_units > 5 else None

    @hookimpl
    def niaga_order_transition(self, order, to_status, market):
        return "held by the probe" if self.refuse_cancel and to_status == "cancelled" else None

    @hookimpl
    def niaga_event(self, event, market):
        self.events.append(event.type)

    @hookimpl
    def niaga_convert_price(self, product, market):
        # stands in for an FX plugin: it knows the DE price list from elsewhere
        known = {p.sku: p for p in self.catalog}.get(product.sku)
        if known is None or market.currency != "EUR":
            return None
        return Money(known.prices["DE"].amount * 2, "EUR")

    @hookimpl
    def niaga_format_money(self, money, locale):
        return f"PROBE {money.format_amount()}"

    @hookimpl
    def niaga_loyalty_quote(self, cart, market, customer_id, points):
        return LoyaltyUse(points=points, discount=Money(points, cart.currency), source="probe")


@pytest.fixture
async def probed(store, markets):
    from kernel.demo import seed

    raw = {code: {"name": m.name, "currency": m.currency, "locales": list(m.locales),
                  "prices_include_tax": m.prices_include_tax, "countries": list(m.countries),
                  "plugins": {**m.plugins, **({"probe": {}} if code == "DE" else {})}}
           for code, m in markets.items()}
    probe_markets = parse_markets({"markets": raw})
    ctx = Niaga(store, probe_markets, registry=Registry({"probe": Probe}))
    await seed(store, probe_markets, ctx.clock())
    probe = ctx.plugins_for("DE").pm.get_plugin("probe")
    probe.catalog = await store.list_products()
    yield ctx, probe
    await ctx.dispatcher.stop()


async def _de_cart(ctx, lines, city="Berlin"):
    cart = await carts.create_cart(ctx, "DE", "web", None)
    for sku, qty in lines:
        await carts.add_line(ctx, cart.id, sku, qty)
    await carts.set_address(ctx, cart.id, Address(country="DE", city=city,
                                                  postal_code="10115", line1="Str. 1"))
    options = await carts.delivery_options(ctx, cart.id)
    ship = next(o for o in options if o.kind == "ship")
    return await carts.set_delivery(ctx, cart.id, ship.id)


async def test_chain_collect_and_notify_hooks_shape_the_cart(probed):
    ctx, probe = probed
    products = {p.sku: p for p in await ctx.store.list_products()}
    sku_a, sku_b = sorted(s for s, p in products.items() if "DE" in p.prices)[:2]
    cart = await _de_cart(ctx, [(sku_a, 3), (sku_b, 1)])
    base = products[sku_a].prices["DE"].amount
    line = cart.line_for_sku(sku_a)
    assert line.unit_price.amount == base * 9 // 10  # chain: tiered price from 3 units
    assert cart.discount_total.amount == 100  # collect: the bundle discount
    assert any(a.source == "probe" and a.kind == "discount" for a in cart.adjustments)
    assert probe.updated >= 5  # notify: create + 2 lines + address + delivery


async def test_validate_and_veto_hooks_stop_checkout_with_named_reasons(probed):
    ctx, _ = probed
    products = [p for p in await ctx.store.list_products() if "DE" in p.prices]
    cart = await _de_cart(ctx, [(products[0].sku, 1)], city="Nowhere")
    with pytest.raises(ValidationError) as refused:
        await checkout(ctx, cart.id, {"method": "testpay", "token": "tok_ok"}, "k1", "h")
    assert refused.value.errors == [{"field": "address.city",
                                     "message": "we do not deliver to Nowhere"}]
    big = await _de_cart(ctx, [(products[1].sku, 6)])
    with pytest.raises(ValidationError) as vetoed:
        await checkout(ctx, big.id, {"method": "testpay", "token": "tok_ok"}, "k2", "h")
    assert vetoed.value.extra["rule"] == "max-units"
    level = await ctx.store.get_stock([products[1].sku])
    assert all(lv.reserved == 0 for lv in level.values())  # nothing held after a veto


async def test_event_and_transition_guard_hooks(probed):
    ctx, probe = probed
    products = [p for p in await ctx.store.list_products() if "DE" in p.prices]
    cart = await _de_cart(ctx, [(products[0].sku, 1)])
    order, _ = await checkout(ctx, cart.id, {"method": "testpay", "token": "tok_ok"}, "k", "h")
    await ctx.dispatcher.drain()
    assert probe.events[:2] == ["order.placed", "order.paid"]
    probe.refuse_cancel = True
    with pytest.raises(Conflict, match="held by the probe"):
        await orders.cancel(ctx, order.id, "changed my mind")
    assert (await orders.load_order(ctx, order.id)).status == "paid"


async def test_first_result_hooks_convert_format_quote_and_allocate(probed):
    ctx, _ = probed
    from kernel.api.storefront import product_read
    from kernel.pricing import unit_price

    original = next(p for p in await ctx.store.list_products() if "DE" in p.prices)
    euros = original.prices["DE"]
    unpriced = msgspec.structs.replace(original, prices={"ID": original.prices["ID"]})
    converted = unit_price(unpriced, ctx.market("DE"), ctx.plugins_for("DE"))
    assert converted == Money(euros.amount * 2, "EUR")  # the probe doubles the DE price
    read = product_read(ctx, original, ctx.market("DE"), "de-DE")
    assert read.price.display == f"PROBE {original.prices['DE'].format_amount()}"
    customer, _token = await create_customer(ctx, "probe@example.com", None)
    # the kernel's ledger holds the balance the quote may use
    await ctx.store.loyalty_apply([LedgerEntry(id="grant", customer_id=customer.id, points=50,
                                               kind="adjust")])
    cart = await carts.create_cart(ctx, "DE", "app", customer)
    await carts.add_line(ctx, cart.id, original.sku, 2)
    cart = await carts.use_loyalty(ctx, cart.id, customer, 50)
    assert cart.loyalty.discount == Money(50, "EUR") and cart.discount_total.amount == 50
    # allocation: the kernel's default answers when no plugin does (pickup → that store)
    options = await carts.delivery_options(ctx, cart.id)
    pickup = next(o for o in options if o.kind == "pickup")
    await carts.set_address(ctx, cart.id, Address(country="DE", city="Berlin"))
    await carts.set_delivery(ctx, cart.id, pickup.id)
    order, _ = await checkout(ctx, cart.id, {"method": "testpay", "token": "tok_ok"}, "k3", "h")
    assert {a.location_id for a in order.allocations} == {pickup.location_id}
