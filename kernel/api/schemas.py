"""HTTP shapes (msgspec): ``XRead`` for responses, ``XCreate``/``XUpdate`` for bodies.

Money crosses the wire as ``{"amount": "19.99", "currency": "EUR"}`` with
exactly the currency's ISO 4217 digits; the domain keeps integer minor units.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from kernel.cart import Address, Cart
from kernel.errors import ValidationError
from kernel.money import MAX_AMOUNT, Money, MoneyError

Sku = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Quantity = Annotated[int, Meta(ge=0, le=999)]
ShortText = Annotated[str, Meta(max_length=200)]


class MoneyRead(Struct, omit_defaults=True):
    amount: str
    currency: str
    display: str | None = None


class MoneyIn(Struct, forbid_unknown_fields=True):
    amount: Annotated[str, Meta(max_length=32)]
    currency: Annotated[str, Meta(min_length=3, max_length=3)]

    def to_money(self, field: str) -> Money:
        try:
            parsed = Money.parse(self.amount, self.currency)
        except MoneyError as exc:
            raise ValidationError.field(field, str(exc)) from exc
        if parsed.amount < 0:  # prices and captured amounts alike
            raise ValidationError.field(f"{field}.amount", "must not be negative")
        if parsed.amount > MAX_AMOUNT:  # refused before any total or column overflows
            raise ValidationError.field(f"{field}.amount", f"must be at most "
                                        f"{Money(MAX_AMOUNT, parsed.currency).format_amount()}")
        return parsed


def money(m: Money, locale: str | None = None) -> MoneyRead:
    return MoneyRead(amount=m.format_amount(), currency=m.currency,
                     display=m.display(locale) if locale else None)


# -- storefront -----------------------------------------------------------------


class MarketRead(Struct):
    code: str
    name: str
    currency: str
    locales: list[str]
    prices_include_tax: bool
    channels: list[str]
    plugins: list[str]
    countries: list[str]
    rounding_mode: str
    rounding_level: str


class ProductRead(Struct):
    sku: str
    name: str
    description: str
    price: MoneyRead
    tax_class: str
    weight_grams: int
    attributes: dict[str, str]
    locale: str


class LocationAvailability(Struct):
    id: str
    name: str
    kind: Literal["warehouse", "store"]
    available: int


class AvailabilityRead(Struct):
    sku: str
    market: str
    available: int
    locations: list[LocationAvailability]


# -- carts ------------------------------------------------------------------------


class CartCreate(Struct, forbid_unknown_fields=True):
    market: Annotated[str, Meta(min_length=2, max_length=2)]
    channel: Annotated[str, Meta(max_length=20)] = "web"


class LineCreate(Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Annotated[int, Meta(ge=1, le=999)] = 1


class LineUpdate(Struct, forbid_unknown_fields=True):
    quantity: Quantity


class AddressUpdate(Struct, forbid_unknown_fields=True):
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")]
    region: ShortText | None = None
    city: ShortText | None = None
    postal_code: Annotated[str, Meta(max_length=20)] | None = None
    line1: ShortText | None = None
    name: ShortText | None = None
    email: Annotated[str, Meta(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    phone: Annotated[str, Meta(max_length=32, pattern=r"^\+?[0-9 ()-]{4,32}$")] | None = None

    def to_address(self) -> Address:
        return Address(**msgspec.structs.asdict(self))


class DeliveryUpdate(Struct, forbid_unknown_fields=True):
    option_id: Annotated[str, Meta(min_length=1, max_length=200)]


class LoyaltyUpdate(Struct, forbid_unknown_fields=True):
    points: Annotated[int, Meta(ge=0, le=100_000_000)]


class PaymentIn(Struct):
    method: Annotated[str, Meta(min_length=1, max_length=64)]
    token: ShortText | None = None


class CheckoutCreate(Struct, forbid_unknown_fields=True):
    payment: dict[str, Any]


class FxRead(Struct):
    """The rate snapshot of a price converted from another market's (null: a catalog price)."""

    base: str  # the base price, in major units of base_currency
    base_currency: str
    rate: str  # units of the line's currency per unit of base_currency, markup included
    source: str


class LineRead(Struct):
    id: str
    sku: str
    name: str
    quantity: int
    unit_price: MoneyRead
    subtotal: MoneyRead
    discount: MoneyRead
    tax: MoneyRead
    total: MoneyRead
    fx: FxRead | None


class AdjustmentRead(Struct):
    source: str
    kind: str
    label: str
    amount: MoneyRead
    line_id: str | None = None


class DeliveryRead(Struct):
    option_id: str
    kind: str
    carrier: str
    label: str
    price: MoneyRead
    location_id: str | None = None


class LoyaltyRead(Struct):
    points: int
    discount: MoneyRead


class AddressRead(Struct):
    country: str
    region: str | None = None
    city: str | None = None
    postal_code: str | None = None
    line1: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None


class CartRead(Struct):
    id: str
    market: str
    channel: str
    channels: list[str]
    currency: str
    customer_id: str | None
    status: str
    version: int
    lines: list[LineRead]
    address: AddressRead | None
    delivery: DeliveryRead | None
    loyalty: LoyaltyRead | None
    subtotal: MoneyRead
    discount_total: MoneyRead
    shipping_total: MoneyRead
    tax_total: MoneyRead
    total: MoneyRead
    rounding_total: MoneyRead  # cash rounding; the invariant adds it (0 unless configured)
    prices_include_tax: bool
    tax_estimated: bool
    adjustments: list[AdjustmentRead]
    # what the last change did unasked (a line dropped, a quantity capped, a choice cleared)
    warnings: list[CartWarningRead] = []
    merged_into: str | None = None  # status "merged": the cart that took its lines


class CartWarningRead(Struct):
    code: str  # not_sold | out_of_stock | quantity_reduced | {address,delivery,loyalty}_cleared
    message: str
    sku: str | None = None


class MarketMove(Struct, forbid_unknown_fields=True):
    market: Annotated[str, Meta(min_length=2, max_length=2)]


class DeliveryOptionRead(Struct):
    id: str
    kind: Literal["ship", "pickup"]
    carrier: str
    label: str
    price: MoneyRead
    location_id: str | None = None


class PaymentMethodRead(Struct):
    id: str
    gateway: str
    label: str
    kind: str


# -- orders -----------------------------------------------------------------------


class PaymentRead(Struct):
    method: str
    status: str
    ship_unpaid: bool
    authorized: MoneyRead
    captured: MoneyRead
    refunded: MoneyRead
    reference: str | None
    instructions: dict[str, str]


class FulfillmentRead(Struct):
    id: str
    location_id: str | None
    lines: list[dict[str, Any]]
    tracking_number: str | None


class TrackingRead(Struct):
    fulfillment_id: str
    carrier: str
    tracking_number: str
    status: str
    detail: str | None = None


class HistoryRead(Struct):
    at: float
    event: str
    detail: dict[str, Any]


class MoneyPolicyRead(Struct):
    prices_include_tax: bool
    rounding_mode: str
    rounding_level: str
    cash_rounding: int = 0  # minor units


class OrderLineRead(LineRead):
    fulfilled: int
    returned: int


class OrderRead(Struct):
    id: str
    number: str
    cart_id: str
    market: str
    channel: str
    channels: list[str]
    customer_id: str | None
    currency: str
    status: str
    lines: list[OrderLineRead]
    address: AddressRead | None
    delivery: DeliveryRead | None
    loyalty: LoyaltyRead | None
    subtotal: MoneyRead
    discount_total: MoneyRead
    shipping_total: MoneyRead
    tax_total: MoneyRead
    total: MoneyRead
    rounding_total: MoneyRead
    prices_include_tax: bool
    money_policy: MoneyPolicyRead
    adjustments: list[AdjustmentRead]
    payment: PaymentRead
    fulfillments: list[FulfillmentRead]
    history: list[HistoryRead]
    created_at: float
    payment_due_at: float | None
    hold: dict[str, str] | None = None
    exchange_of: str | None = None  # the order whose returned units this one replaces
    exchanged_for: list[str] = []  # orders placed in exchange for this one's returned units


# -- customers and admin --------------------------------------------------------


class CustomerCreate(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=320)]
    name: ShortText | None = None


class CustomerTokenRead(Struct):
    id: str
    token: str


class TierRead(Struct):
    name: str
    multiplier: str


class MeLoyaltyRead(Struct):
    """One balance across markets and channels; the tier is a market's policy."""

    balance: int
    lifetime_points: int  # base points (before tier multipliers) ever earned and kept
    tier: TierRead | None  # None when no market runs a loyalty programme
    market: str | None  # the market whose tiers ``tier`` comes from


class SavedAddressRead(Struct):
    id: str
    label: str | None
    country: str
    region: str | None
    city: str | None
    postal_code: str | None
    line1: str | None
    name: str | None
    email: str | None
    phone: str | None
    default: bool


class ConsentRead(Struct):
    granted: bool
    changed_at: float | None  # None: never asked
    channel: str | None  # the channel the last change came from


class ConsentChangeRead(Struct):
    topic: str
    granted: bool
    at: float
    channel: str | None


class MeRead(Struct):
    id: str
    email: str | None
    name: str | None
    loyalty: MeLoyaltyRead | None
    phone: str | None = None
    locale: str | None = None
    addresses: list[SavedAddressRead] = []
    # every topic of kernel.customers.CONSENT_TOPICS, asked or not
    consents: dict[str, ConsentRead] = {}
    consent_history: list[ConsentChangeRead] = []  # oldest first


def profile_fields(customer: Any) -> dict[str, Any]:
    """MeRead's profile fields of a ``kernel.store.base.Customer``."""
    from kernel.customers import CONSENT_TOPICS, Consent

    return {
        "phone": customer.phone, "locale": customer.locale,
        "addresses": [SavedAddressRead(**msgspec.structs.asdict(a))
                      for a in customer.addresses],
        "consents": {t: ConsentRead(**msgspec.structs.asdict(customer.consents.get(t, Consent())))
                     for t in CONSENT_TOPICS},
        "consent_history": [ConsentChangeRead(**msgspec.structs.asdict(h))
                            for h in customer.consent_history],
    }


class MergeCreate(Struct, forbid_unknown_fields=True):
    cart_id: Annotated[str, Meta(min_length=1, max_length=64)]


class ProductUpdate(Struct, forbid_unknown_fields=True):
    names: Annotated[dict[Annotated[str, Meta(max_length=16)], ShortText], Meta(min_length=1)]
    prices: dict[Annotated[str, Meta(min_length=2, max_length=2)], MoneyIn]
    tax_class: Annotated[str, Meta(min_length=1, max_length=32)] = "standard"
    weight_grams: Annotated[int, Meta(ge=0, le=10_000_000)] = 0
    attributes: dict[Annotated[str, Meta(max_length=64)], ShortText] = {}
    descriptions: dict[Annotated[str, Meta(max_length=16)],
                       Annotated[str, Meta(max_length=5000)]] = {}


class AdminProductRead(Struct):
    sku: str
    names: dict[str, str]
    prices: dict[str, MoneyRead]
    tax_class: str
    weight_grams: int
    attributes: dict[str, str]


class FxRatesUpdate(Struct, forbid_unknown_fields=True):
    base: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
    rates: Annotated[dict[Annotated[str, Meta(pattern=r"^[A-Z]{3}$")],
                          Annotated[str, Meta(max_length=40)]], Meta(min_length=1, max_length=200)]


class StockUpdate(Struct, forbid_unknown_fields=True):
    """At least one of the two (a 422 naming ``on_hand`` otherwise); the other stays."""

    on_hand: Annotated[int, Meta(ge=0, le=1_000_000_000)] | None = None
    # stock.low fires when available falls to or below it; 0 turns the alert off
    low_threshold: Annotated[int, Meta(ge=0, le=1_000_000_000)] | None = None


class StockAdjust(Struct, forbid_unknown_fields=True):
    delta: Annotated[int, Meta(ge=-1_000_000_000, le=1_000_000_000)]
    reason: Annotated[str, Meta(min_length=1, max_length=64)]


class StockRead(Struct):
    sku: str
    location_id: str
    on_hand: int
    reserved: int
    available: int
    low_threshold: int = 0
    low: bool = False  # available is at or below a set threshold


class MarkPaid(Struct, forbid_unknown_fields=True):
    reference: ShortText | None = None


class CaptureCreate(Struct, forbid_unknown_fields=True):
    amount: MoneyIn | None = None


class LineQuantity(Struct, forbid_unknown_fields=True):
    line_id: Annotated[str, Meta(min_length=1, max_length=64)]
    quantity: Annotated[int, Meta(ge=1, le=999)]


class FulfillmentCreate(Struct, forbid_unknown_fields=True):
    lines: list[LineQuantity] | None = None
    location_id: Annotated[str, Meta(max_length=64)] | None = None
    tracking_number: Annotated[str, Meta(max_length=64)] | None = None


class ReleaseCreate(Struct, forbid_unknown_fields=True):
    note: ShortText | None = None


class CancelCreate(Struct, forbid_unknown_fields=True):
    reason: ShortText | None = None


class ReturnLineCreate(Struct, forbid_unknown_fields=True):
    line_id: Annotated[str, Meta(min_length=1, max_length=64)]
    quantity: Annotated[int, Meta(ge=1, le=999)]
    restock: bool | None = None  # false writes the units off; default: the request's
    location_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None  # came back at


class ReturnCreate(Struct, forbid_unknown_fields=True):
    lines: Annotated[list[ReturnLineCreate], Meta(min_length=1, max_length=50)]
    restock: bool = True


class ExchangeItemCreate(Struct, forbid_unknown_fields=True):
    sku: Sku
    quantity: Annotated[int, Meta(ge=1, le=999)]


class ExchangeCreate(Struct, forbid_unknown_fields=True):
    lines: Annotated[list[ReturnLineCreate], Meta(min_length=1, max_length=50)]
    items: Annotated[list[ExchangeItemCreate], Meta(min_length=1, max_length=50)]
    payment: dict[str, Any]
    restock: bool = True
    delivery_option_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class ExchangeRead(Struct):
    original: OrderRead  # after the return
    order: OrderRead  # the new order, ``exchange_of`` the original


class PluginRead(Struct):
    name: str
    version: str
    family: str
    hooks: list[str]
    markets: list[str]


class SalesGroupRead(Struct):
    """One group's sales in one currency (money in different currencies is never summed)."""

    group: str  # the channel, the market, "channel/market", or "all" (totals)
    currency: str
    orders: int
    revenue: MoneyRead  # net of refunds
    aov: MoneyRead  # revenue ÷ orders, half-up to the minor unit
    gross: MoneyRead  # before refunds
    refunded: MoneyRead
    channel: str | None = None
    market: str | None = None


class SalesCustomersRead(Struct):
    """Known customers with counted orders in the period (guest orders count only in sales)."""

    customers: int
    repeat_customers: int  # with 2+ counted orders
    repeat_rate: float | None  # repeat_customers ÷ customers; null without customers
    multichannel_customers: int  # whose counted orders were created in 2+ channels
    multichannel_share: float | None  # multichannel_customers ÷ customers
    guest_orders: int


class SalesReportRead(Struct):
    group_by: str
    groups: list[SalesGroupRead]  # the by_* list that group_by names
    by_channel: list[SalesGroupRead]
    by_market: list[SalesGroupRead]
    by_channel_market: list[SalesGroupRead]
    totals: list[SalesGroupRead]  # one per currency
    customers: SalesCustomersRead
    cross_channel_orders: int  # counted orders whose cart was touched by 2+ channels
    truncated: bool  # true only if the period could not be read completely
    from_: float | None = msgspec.field(name="from", default=None)
    to: float | None = None


# -- conversions --------------------------------------------------------------------


def _address(a: Address | None) -> AddressRead | None:
    return AddressRead(**msgspec.structs.asdict(a)) if a is not None else None


def _lines(doc: Any, cls: type) -> list:
    extra = cls is OrderLineRead
    out = []
    for li in doc.lines:
        fields = dict(id=li.id, sku=li.sku, name=li.name, quantity=li.quantity,
                      unit_price=money(li.unit_price), subtotal=money(li.subtotal),
                      discount=money(li.discount), tax=money(li.tax), total=money(li.total),
                      fx=FxRead(**{k: li.fx.get(k, "") for k in FxRead.__struct_fields__})
                      if li.fx else None)
        if extra:
            fields.update(fulfilled=li.fulfilled, returned=li.returned)
        out.append(cls(**fields))
    return out


def _common(doc: Any) -> dict[str, Any]:
    d = doc.delivery
    return dict(
        address=_address(doc.address),
        delivery=DeliveryRead(option_id=d.option_id, kind=d.kind, carrier=d.carrier,
                              label=d.label, price=money(d.price), location_id=d.location_id)
        if d else None,
        loyalty=LoyaltyRead(points=doc.loyalty.points, discount=money(doc.loyalty.discount))
        if doc.loyalty else None,
        subtotal=money(doc.subtotal), discount_total=money(doc.discount_total),
        shipping_total=money(doc.shipping_total), tax_total=money(doc.tax_total),
        total=money(doc.total), prices_include_tax=doc.prices_include_tax,
        rounding_total=money(Money(sum(a.amount.amount for a in doc.adjustments
                                       if a.kind == "rounding"), doc.currency)),
        adjustments=[AdjustmentRead(source=a.source, kind=a.kind, label=a.label,
                                    amount=money(a.amount), line_id=a.line_id)
                     for a in doc.adjustments],
    )


def cart_read(cart: Cart) -> CartRead:
    return CartRead(id=cart.id, market=cart.market, channel=cart.channel,
                    channels=list(cart.channels), currency=cart.currency,
                    customer_id=cart.customer_id, status=cart.status, version=cart.version,
                    lines=_lines(cart, LineRead), tax_estimated=cart.tax_estimated,
                    warnings=[CartWarningRead(code=w.code, message=w.message, sku=w.sku)
                              for w in cart.warnings],
                    merged_into=cart.merged_into, **_common(cart))


def order_read(order: Any) -> OrderRead:
    p = order.payment
    return OrderRead(
        id=order.id, number=order.number, cart_id=order.cart_id, market=order.market,
        channel=order.channel, channels=list(order.channels), customer_id=order.customer_id,
        currency=order.currency, status=order.status, lines=_lines(order, OrderLineRead),
        money_policy=MoneyPolicyRead(**msgspec.structs.asdict(order.money_policy)),
        payment=PaymentRead(method=p.method, status=p.status, ship_unpaid=p.ship_unpaid,
                            authorized=money(p.authorized),
                            captured=money(p.captured), refunded=money(p.refunded),
                            reference=p.reference, instructions=dict(p.instructions)),
        fulfillments=[FulfillmentRead(id=f.id, location_id=f.location_id, lines=f.lines,
                                      tracking_number=f.tracking_number)
                      for f in order.fulfillments],
        history=[HistoryRead(at=h.at, event=h.event, detail=h.detail) for h in order.history],
        created_at=order.created_at, payment_due_at=order.payment_due_at, hold=order.hold,
        exchange_of=order.exchange_of, exchanged_for=list(order.exchanged_for),
        **_common(order),
    )
