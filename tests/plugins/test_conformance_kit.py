"""The plugin author kit itself: the suites catch broken plugins, collect the way a plugin's
own test module expects, and the kernel, cart and order fixtures run the real services."""

from __future__ import annotations

import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import msgspec
import pytest

from kernel import Money, hookimpl
from kernel.cart import Adjustment, LoyaltyUse
from kernel.delivery import DeliveryOption, Shipment, TrackingStatus
from kernel.errors import NiagaError
from kernel.payments import OperationResult, PaymentMethod, PaymentResult, WebhookEvent
from kernel.tax import SHIPPING, TaxedLine, TaxResult, compute_taxes
from kernel.testing import (
    CarrierConformance,
    LoyaltyConformance,
    PaymentConformance,
    PluginConformance,
    TaxConformance,
)
from plugins.carriers.flat_rate import FlatRate
from plugins.payments.testpay import TestPay
from plugins.tax.vat import VatTax

FAILS = (AssertionError, NiagaError)


def run(suite: type, test: str, **params) -> None:
    """Run one inherited test method the way pytest would."""
    instance = suite()
    instance.setup_method()
    getattr(instance, test)(**params)


# -- collection ---------------------------------------------------------------------------


def test_the_suites_are_not_tests_but_their_subclasses_are():
    for suite in (PluginConformance, TaxConformance, PaymentConformance, CarrierConformance,
                  LoyaltyConformance):
        assert suite.__test__ is False

    class TestMine(TaxConformance):
        plugin = VatTax

    class TestNotYet(TaxConformance):
        __test__ = False

    assert TestMine.__test__ is True and TestNotYet.__test__ is False


def test_a_suite_without_a_plugin_skips_saying_why():
    class TestNoPlugin(LoyaltyConformance):
        pass

    with pytest.raises(pytest.skip.Exception, match="no loyalty plugin given"):
        run(TestNoPlugin, "test_a_tier_for_zero_lifetime_points")


DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def doc_example(tag: str, lang: str = "python") -> str:
    match = re.search(rf"<!-- example:{tag} -->\s*```{lang}\n(.*?)^```", DOC.read_text(),
                      flags=re.M | re.S)
    assert match, f"docs/plugins.md has no ```{lang} block marked <!-- example:{tag} -->"
    return match.group(1)


def test_the_documented_suite_runs_as_a_plugins_own_test_module(tmp_path):
    """docs/plugins.md's example plugin and its TaxConformance test module, run by pytest
    in a fresh directory with nothing but the pytest11 plugin, as a third party would."""
    (tmp_path / "freedonia_gst.py").write_text(doc_example("plugin"))
    (tmp_path / "test_freedonia_gst.py").write_text(doc_example("conformance"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                           "-p", "no:cacheprovider", "test_freedonia_gst.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    # 2 shared + 12 add-up + another market + empty cart; nothing of the base class
    assert summary.startswith("16 passed") and "skipped" not in summary, done.stdout


# -- the tax suite catches ---------------------------------------------------------------


class VatBase:
    name = "vat"
    family = "tax"

    def __init__(self, market):
        self.market = market

    def rates(self, request):
        rate = (Fraction(19), "19")
        return {**{t.line_id: rate for t in request.lines}, SHIPPING: rate}


class DropsALine(VatBase):
    @hookimpl
    def niaga_calculate_taxes(self, request):
        result = compute_taxes(request, self.rates(request), source=self.name)
        return msgspec.structs.replace(result, lines=result.lines[1:])


class FloorsTheTax(VatBase):
    @hookimpl
    def niaga_calculate_taxes(self, request):
        if request.market != self.market.code:
            return None
        lines = []
        for t in request.lines:
            tax = t.amount.amount * 19 // (119 if request.policy.prices_include_tax else 100)
            lines.append(TaxedLine(line_id=t.line_id, tax=Money(tax, request.currency),
                                   rate="19", label="VAT"))
        return TaxResult(source=self.name, lines=lines)


class FloatMoney(VatBase):
    @hookimpl
    def niaga_calculate_taxes(self, request):
        if request.market != self.market.code:
            return None
        return TaxResult(source=self.name, lines=[
            TaxedLine(line_id=t.line_id, tax=Money(t.amount.amount * 0.19, request.currency),
                      rate="19", label="VAT") for t in request.lines])


class EveryMarket(VatBase):
    @hookimpl
    def niaga_calculate_taxes(self, request):
        return compute_taxes(request, self.rates(request), source=self.name)


class NothingForAnEmptyCart(VatBase):
    @hookimpl
    def niaga_calculate_taxes(self, request):
        if request.market != self.market.code or not request.lines:
            return None
        return compute_taxes(request, self.rates(request), source=self.name)


@pytest.mark.parametrize(("broken", "test", "params"), [
    (DropsALine, "test_taxes_add_up", {"level": "line", "mode": "inclusive",
                                       "currency": "market"}),
    (FloorsTheTax, "test_taxes_add_up", {"level": "line", "mode": "exclusive",
                                         "currency": "market"}),
    (FloatMoney, "test_taxes_add_up", {"level": "unit", "mode": "inclusive",
                                       "currency": "zero-decimal"}),
    (EveryMarket, "test_another_market_is_not_answered", {}),
    (NothingForAnEmptyCart, "test_an_empty_cart_is_answered", {}),
])
def test_the_tax_suite_fails_a_broken_tax_plugin(broken, test, params):
    class TestBroken(TaxConformance):
        plugin = broken
        market = {"code": "DE"}
        max_examples = 10

    with pytest.raises(FAILS):
        run(TestBroken, test, **params)


def test_the_tax_suite_honours_declared_modes_and_zero_decimal_markets():
    class TestInclusiveOnly(TaxConformance):
        plugin = VatTax
        settings = {"rates": {"standard": "19"}}
        modes = ("inclusive",)
        zero_decimal_market = None

    with pytest.raises(pytest.skip.Exception, match="modes"):
        run(TestInclusiveOnly, "test_taxes_add_up", level="line", mode="exclusive",
            currency="market")
    with pytest.raises(pytest.skip.Exception, match="zero-decimal"):
        run(TestInclusiveOnly, "test_taxes_add_up", level="line", mode="inclusive",
            currency="zero-decimal")


# -- the payment suite catches ------------------------------------------------------------


class CardBase:
    name = "card"
    family = "payment"
    counter = 0

    def __init__(self, market):
        self.market = market

    @hookimpl
    def niaga_payment_methods(self, cart, market):
        return [PaymentMethod(id=self.name, gateway=self.name, label="Card", kind="card")]

    def reference(self, request):
        return "ref-" + request.idempotency_key

    @hookimpl
    def niaga_payment_authorize(self, gateway, request):
        if gateway != self.name:
            return None
        return PaymentResult(status="captured", amount=request.amount,
                             reference=self.reference(request))

    @hookimpl
    def niaga_payment_refund(self, gateway, operation):
        if gateway != self.name:
            return None
        return OperationResult(ok=True, amount=operation.amount, reference="re-1")

    @hookimpl
    def niaga_webhook_parse(self, plugin, headers, body):
        if plugin != self.name:
            return None
        if headers.get("sig") != "good" or body != b'{"id": "evt-1"}':
            from kernel.payments import WebhookRejected

            raise WebhookRejected("bad signature")
        return WebhookEvent(id="evt-1", kind="payment.captured")


class ChargesTwice(CardBase):
    def reference(self, request):
        CardBase.counter += 1
        return f"ref-{CardBase.counter}"


class AnswersEveryGateway(CardBase):
    @hookimpl
    def niaga_payment_authorize(self, gateway, request):
        return PaymentResult(status="captured", amount=request.amount, reference="r")


class TrustsAnyWebhook(CardBase):
    @hookimpl
    def niaga_webhook_parse(self, plugin, headers, body):
        return WebhookEvent(id="evt-1", kind="payment.captured") if plugin == self.name else None


class ChargesTheWrongAmount(CardBase):
    @hookimpl
    def niaga_payment_authorize(self, gateway, request):
        if gateway != self.name:
            return None
        return PaymentResult(status="captured", amount=request.amount * 2, reference="r")


class RefundsInFloats(CardBase):
    @hookimpl
    def niaga_payment_refund(self, gateway, operation):
        if gateway != self.name:
            return None
        return OperationResult(ok=True, amount=Money(operation.amount.amount / 1, "EUR"))


@pytest.mark.parametrize(("broken", "test", "params"), [
    (ChargesTwice, "test_the_same_idempotency_key_is_the_same_payment", {}),
    (AnswersEveryGateway, "test_answers_only_its_own_gateway", {}),
    (TrustsAnyWebhook, "test_a_tampered_webhook_is_rejected", {}),
    (ChargesTheWrongAmount, "test_authorizes_the_requested_amount", {"capture": True}),
    (RefundsInFloats, "test_a_capture_refunds_in_full_and_in_part", {}),
])
def test_the_payment_suite_fails_a_broken_payment_plugin(broken, test, params):
    class TestBroken(PaymentConformance):
        plugin = broken

        def webhook_good(self, plugin):
            return {"sig": "good"}, b'{"id": "evt-1"}'

    run(type("TestGood", (TestBroken,), {"plugin": CardBase}), test, **params)
    with pytest.raises(FAILS):
        run(TestBroken, test, **params)


# -- the carrier suite catches ------------------------------------------------------------


class CourierBase:
    name = "courier"
    family = "carrier"

    def __init__(self, market):
        self.market = market

    def option(self, context):
        return DeliveryOption(id="courier:std", kind="ship", carrier=self.name,
                              label="Courier", price=Money(500, self.market.currency))

    @hookimpl
    def niaga_delivery_options(self, context, market):
        return [self.option(context)]

    @hookimpl
    def niaga_create_shipment(self, carrier, order, fulfillment):
        if carrier != self.name:
            return None
        return Shipment(carrier=self.name, tracking_number=f"T-{order.id}-{fulfillment.id}")

    @hookimpl
    def niaga_track_shipment(self, carrier, tracking_number):
        if carrier != self.name:
            return None
        return TrackingStatus(carrier=self.name, tracking_number=tracking_number,
                              status="in_transit")


class PricesInDollars(CourierBase):
    def option(self, context):
        return DeliveryOption(id="courier:std", kind="ship", carrier=self.name,
                              label="Courier", price=Money(500, "USD"))


class UnprefixedIds(CourierBase):
    def option(self, context):
        return DeliveryOption(id="std", kind="ship", carrier=self.name, label="Courier",
                              price=Money(500, self.market.currency))


class PicksUpAtTheWarehouse(CourierBase):
    def option(self, context):
        warehouse = next(loc for loc in context.locations if loc.kind == "warehouse")
        return DeliveryOption(id=f"courier:{warehouse.id}", kind="pickup", carrier=self.name,
                              label="Pickup", price=Money(0, self.market.currency),
                              location_id=warehouse.id)


class NewNumberEveryTime(CourierBase):
    booked = 0

    @hookimpl
    def niaga_create_shipment(self, carrier, order, fulfillment):
        if carrier != self.name:
            return None
        NewNumberEveryTime.booked += 1
        return Shipment(carrier=self.name, tracking_number=f"T-{self.booked}")


@pytest.mark.parametrize(("broken", "test"), [
    (PricesInDollars, "test_offers_options_in_the_market_currency"),
    (UnprefixedIds, "test_offers_options_in_the_market_currency"),
    (PicksUpAtTheWarehouse, "test_offers_options_in_the_market_currency"),
    (NewNumberEveryTime, "test_ships_and_tracks_its_own_shipments_only"),
])
def test_the_carrier_suite_fails_a_broken_carrier(broken, test):
    class TestBroken(CarrierConformance):
        plugin = broken

    run(type("TestGood", (TestBroken,), {"plugin": CourierBase}), test)
    with pytest.raises(FAILS):
        run(TestBroken, test)


def test_a_carrier_that_offers_nothing_says_what_to_change():
    class TestNowhere(CarrierConformance):
        plugin = FlatRate
        settings = {"options": [{"id": "std", "label": "Std", "price": "4.90"}],
                    "countries": ["AT"]}

    with pytest.raises(AssertionError, match="offered nothing"):
        run(TestNowhere, "test_offers_options_in_the_market_currency")


# -- the loyalty suite catches ------------------------------------------------------------


class GenerousPoints:
    name = "generous"
    family = "loyalty"

    def __init__(self, market):
        self.market = market

    @hookimpl
    def niaga_loyalty_quote(self, cart, market, customer_id, points, balance):
        return LoyaltyUse(points=points, discount=Money(points, cart.currency),
                          source=self.name)

    @hookimpl
    def niaga_loyalty_earn(self, order, market, lifetime_base_points):
        return (order.total.amount // 100, order.total.amount // 100)

    @hookimpl
    def niaga_loyalty_tier(self, lifetime_base_points, market):
        return {"name": "member", "multiplier": "1"}


class DiscountAboveTheTotal(GenerousPoints):
    @hookimpl
    def niaga_loyalty_quote(self, cart, market, customer_id, points, balance):
        return LoyaltyUse(points=min(points, balance), discount=cart.total + Money(1, "EUR"),
                          source=self.name)


def test_the_loyalty_suite_fails_a_plugin_that_spends_more_than_the_balance():
    class TestGenerous(LoyaltyConformance):
        plugin = GenerousPoints

    run(TestGenerous, "test_a_quote_within_the_balance")
    run(TestGenerous, "test_earn_redeem_and_reverse_balance_to_zero")
    run(TestGenerous, "test_a_tier_for_zero_lifetime_points")
    with pytest.raises(AssertionError, match="balance"):
        run(TestGenerous, "test_never_more_than_the_balance")

    class TestTooMuch(LoyaltyConformance):
        plugin = DiscountAboveTheTotal

    with pytest.raises(AssertionError, match="discount"):
        run(TestTooMuch, "test_a_quote_within_the_balance")


# -- the kernel, cart and order fixtures --------------------------------------------------


async def test_a_demo_kernel_takes_an_order_through_the_real_checkout(niaga_kernel, niaga_cart,
                                                                      niaga_order):
    niaga = await niaga_kernel()
    assert set(niaga.markets) >= {"ID", "DE", "US", "JP"}
    cart = await niaga_cart(niaga, "US")
    assert cart.lines and cart.delivery is not None and cart.address.region == "CA"
    assert not cart.tax_estimated and cart.tax_total.amount > 0
    order = await niaga_order(niaga, "DE", [("BATIK-SHIRT-M", 2)])
    assert (order.status, order.payment.status) == ("paid", "captured")
    assert order.lines[0].quantity == 2 and order.currency == "EUR"
    stored = await niaga.store.get_order(order.id)
    assert stored is not None and stored.total == order.total
    assert len(TestPay.calls_of("authorize")) == 1


async def test_the_kernel_takes_plugin_settings_and_uninstalled_plugins(niaga_kernel,
                                                                         niaga_cart):
    class TenOff:
        name = "ten-off"
        family = "cart"

        def __init__(self, market):
            self.market = market

        @hookimpl
        def niaga_cart_discounts(self, cart, market):
            if not cart.lines:
                return []
            return [Adjustment(source=self.name, kind="discount", label="10 off",
                               amount=Money(1000, cart.currency))]

    niaga = await niaga_kernel(plugins={"ten-off": {}, "vat": {"rates": {
        "standard": "20", "reduced": "5"}}}, extra={"ten-off": TenOff}, in_markets=["DE"])
    assert "ten-off" in niaga.plugins_for("DE").names
    assert "ten-off" not in niaga.plugins_for("JP").names
    cart = await niaga_cart(niaga, "DE", ["TOTE-CANVAS"], delivery=None, address=None)
    assert cart.discount_total == Money(1000, "EUR")
    # 19.90 - 10.00 = 9.90 gross at 20 %: 1.65 tax
    assert cart.tax_total == Money(165, "EUR")


async def test_an_order_by_bank_transfer_for_a_signed_in_customer(niaga_kernel, niaga_order):
    niaga = await niaga_kernel()
    order = await niaga_order(niaga, "ID", payment={"method": "bank-transfer"},
                              customer="budi@example.com", delivery="store-pickup")
    assert order.status == "pending_payment" and order.customer_id is not None
    assert order.delivery.kind == "pickup"
    assert order.payment.instructions["bank"] == "Bank Central Asia"


async def test_two_kernels_in_one_test_are_separate(niaga_kernel, niaga_order):
    first, second = await niaga_kernel(), await niaga_kernel(seed_catalog=False)
    await niaga_order(first, "JP")
    assert await second.store.list_products() == []
