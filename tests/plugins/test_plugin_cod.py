"""The ``cod`` (cash on delivery) payment plugin."""

from __future__ import annotations

import hashlib

import pytest

from kernel.cart import Delivery, empty_cart
from kernel.errors import ConfigError
from kernel.money import Money
from kernel.payments import PaymentOperation, PaymentRequest
from kernel.testing import check_plugin_conformance, make_market, make_plugins
from plugins.payments.cod import CashOnDelivery

ID_COD = {"label": "Bayar di tempat (COD)", "max_amount": "5000000"}  # Rp 5.000.000


@pytest.fixture
def idr(build):
    return build.market("ID", "IDR", plugins={"cod": ID_COD})


@pytest.fixture
def cod(build, idr):
    return build.plugin(CashOnDelivery, idr)


def delivery(kind: str, currency: str = "IDR") -> Delivery:
    location = "id-jkt-gi" if kind == "pickup" else None
    return Delivery(option_id=f"x:{kind}", kind=kind, carrier="x", label=kind,
                    price=Money.zero(currency), location_id=location)


def cart_of(build, market, total: str, kind: str | None = None):
    """A one-line cart whose total is ``total`` (the kernel would have priced it so)."""
    cart = build.cart(market, [("KOPI", 1, total, "standard")])
    cart.total = Money.parse(total, market.currency)
    cart.delivery = delivery(kind, market.currency) if kind else None
    return cart


def request(amount: int, key: str = "cart-1:idem-1", currency: str = "IDR") -> PaymentRequest:
    return PaymentRequest(order_id="ord-1", order_number="ID-1001", market="ID",
                          amount=Money(amount, currency), data={}, idempotency_key=key)


def op(amount: int = 15_000_000) -> PaymentOperation:
    return PaymentOperation(order_id="ord-1", reference="cod_x", amount=Money(amount, "IDR"),
                            idempotency_key="k")


def test_cod_conforms():
    assert check_plugin_conformance(CashOnDelivery) == []


# -- methods ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [None, "ship"])
def test_cod_is_offered_before_delivery_is_chosen_and_for_shipping(build, idr, cod, kind):
    cart = cart_of(build, idr, "150000", kind)
    [method] = cod.niaga_payment_methods(cart, idr)
    assert (method.id, method.gateway, method.kind, method.label) == (
        "cod", "cod", "cod", "Bayar di tempat (COD)")


def test_cod_is_hidden_for_store_pickup(build, idr, cod):
    cart = cart_of(build, idr, "150000", "pickup")
    assert cod.niaga_payment_methods(cart, idr) == []


@pytest.mark.parametrize(
    ("total", "offered"),
    [
        ("5000000", True),      # exactly the limit: 500,000,000 minor units == max_amount
        ("4999999.99", True),
        ("5000000.01", False),  # one sen above the limit
        ("12000000", False),
    ],
)
def test_cod_is_hidden_above_max_amount(build, idr, cod, total, offered):
    cart = cart_of(build, idr, total, "ship")
    assert bool(cod.niaga_payment_methods(cart, idr)) is offered


def test_without_max_amount_any_total_may_be_paid_on_delivery(build):
    market = build.market("ID", "IDR", plugins={"cod": {}})
    plugin = build.plugin(CashOnDelivery, market)
    cart = cart_of(build, market, "999999999", "ship")
    [method] = plugin.niaga_payment_methods(cart, market)
    assert method.label == "Cash on delivery"
    assert plugin.niaga_payment_authorize("cod", request(99_999_999_900)).status == "pending"


def test_the_kernel_collects_cod_with_other_methods():
    market = make_market("ID", currency="IDR", locales=["id-ID"],
                         plugins={"cod": {"max_amount": "100000"}})
    manager = make_plugins(market, extra={"cod": CashOnDelivery}, discover=False)
    cart = empty_cart("c", "ID", "web", "IDR", include_tax=True, customer_id=None, now=0.0)
    cart.total = Money(10_000_000, "IDR")  # Rp 100.000 == max_amount
    methods = manager.collect("niaga_payment_methods", cart=cart, market=market)
    assert [m.id for m in methods] == ["cod"]
    cart.total = Money(10_000_001, "IDR")
    assert manager.collect("niaga_payment_methods", cart=cart, market=market) == []


# -- authorize ----------------------------------------------------------------------------


def test_authorize_is_pending_with_the_amount_to_have_ready(cod):
    result = cod.niaga_payment_authorize("cod", request(15_000_000))
    digest = hashlib.sha256(b"cart-1:idem-1").hexdigest()[:24]
    assert result.status == "pending"
    assert result.amount == Money(15_000_000, "IDR")
    assert result.reference == "cod_" + digest
    assert result.instructions == {"pay_on_delivery": "150000.00 IDR"}  # IDR has 2 digits
    assert "ID-1001" in result.message


def test_authorize_is_stable_per_idempotency_key(cod):
    first = cod.niaga_payment_authorize("cod", request(15_000_000))
    again = cod.niaga_payment_authorize("cod", request(15_000_000))
    other = cod.niaga_payment_authorize("cod", request(15_000_000, key="cart-1:idem-2"))
    assert again == first
    assert other.reference != first.reference


def test_authorize_up_to_the_limit_and_declined_above_it(cod):
    at_limit = cod.niaga_payment_authorize("cod", request(500_000_000))  # Rp 5.000.000,00
    assert at_limit.status == "pending"
    above = cod.niaga_payment_authorize("cod", request(500_000_001))  # one sen more
    assert above.status == "declined"
    assert above.reference is None
    assert "5000000.00 IDR" in above.message  # the limit, so the customer knows why


def test_authorize_declines_another_currency(cod):
    result = cod.niaga_payment_authorize("cod", request(1000, currency="EUR"))
    assert result.status == "declined"


def test_cod_in_yen_has_no_minor_unit(build):
    market = build.market("JP", "JPY", plugins={"cod": {"max_amount": "300000"}})
    plugin = build.plugin(CashOnDelivery, market)
    req = PaymentRequest(order_id="o", order_number="JP-7", market="JP",
                         amount=Money(12_800, "JPY"), data={}, idempotency_key="k")
    assert plugin.niaga_payment_authorize("cod", req).instructions == {
        "pay_on_delivery": "12800 JPY"}  # 12,800 yen, JPY has 0 digits
    too_much = PaymentRequest(order_id="o", order_number="JP-8", market="JP",
                              amount=Money(300_001, "JPY"), data={}, idempotency_key="k2")
    assert plugin.niaga_payment_authorize("cod", too_much).status == "declined"


def test_other_gateways_are_not_answered(cod):
    assert cod.niaga_payment_authorize("bank-transfer", request(1000)) is None
    for hook in (cod.niaga_payment_capture, cod.niaga_payment_void, cod.niaga_payment_refund):
        assert hook("bank-transfer", op()) is None


# -- capture, void, refund ------------------------------------------------------------------


def test_operations_are_manual_steps_that_succeed(cod):
    for hook in (cod.niaga_payment_capture, cod.niaga_payment_void, cod.niaga_payment_refund):
        result = hook("cod", op())
        assert result.ok
        assert result.amount == Money(15_000_000, "IDR")
        assert result.reference == "cod_x"
    assert cod.niaga_payment_refund("cod", op(5_000_000)).message == (
        "refund in cash or by transfer")
    assert cod.niaga_payment_refund("cod", op(5_000_000)).amount == Money(5_000_000, "IDR")


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "settings", "needle"),
    [
        ("IDR", {"max_amount": "lots"}, "max_amount"),
        ("IDR", {"max_amount": "0"}, "max_amount"),
        ("IDR", {"max_amount": "-1"}, "max_amount"),
        ("IDR", {"max_amount": 5000000}, "max_amount"),   # a number, not a decimal string
        ("JPY", {"max_amount": "30000.5"}, "max_amount"),  # yen has no minor unit
        ("EUR", {"max_amount": "100.001"}, "max_amount"),
        ("IDR", {"label": "  "}, "label"),
        ("IDR", {"fee": "5000"}, "fee"),                  # no fee setting: typos fail at load
    ],
)
def test_cod_bad_settings(build, currency, settings, needle):
    market = build.market("XX", currency, plugins={"cod": settings})
    with pytest.raises(ConfigError) as err:
        build.plugin(CashOnDelivery, market)
    assert str(err.value).startswith("markets.XX.plugins.cod")
    assert needle in str(err.value)
