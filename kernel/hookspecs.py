"""Every hook a Niaga plugin can implement.

Each docstring starts with the hook's semantics, and the kernel calls it that way:

- **first result**: plugins are asked in turn; the first non-None answer wins.
  Plugins return None when the call is not theirs (another gateway, market...).
- **collect**: every plugin answers; the kernel gathers (and flattens) the lists.
- **chain**: each plugin receives the previous plugin's value and returns a new
  one (or None to leave it unchanged).
- **notify**: the return value is ignored; a plugin that raises is logged and
  isolated, never breaking the caller.

Plugin hooks are synchronous. The kernel runs the payment hooks, webhook parsing
and the carriers' shipment and tracking hooks in a worker thread; the others run
on the event loop and must not block (a tax plugin that calls a web service is
the exception still to be handled: see docs/plugins.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from kernel.cart import Cart, LoyaltyUse
    from kernel.catalog import ConvertedPrice, Product
    from kernel.checkout import CheckoutContext
    from kernel.delivery import DeliveryContext, DeliveryOption, Shipment, TrackingStatus
    from kernel.events import Event
    from kernel.inventory import AllocationRequest
    from kernel.markets import Market
    from kernel.money import Money
    from kernel.orders import Allocated, Fulfillment, Order
    from kernel.payments import (
        OperationResult,
        PaymentMethod,
        PaymentOperation,
        PaymentRequest,
        PaymentResult,
        WebhookEvent,
    )
    from kernel.store.base import Customer
    from kernel.tax import TaxRequest, TaxResult

hookspec = pluggy.HookspecMarker("niaga")


class Veto:
    """Returned by :func:`niaga_before_place_order` to refuse (422) or hold an order."""

    def __init__(self, rule: str, reason: str, *, hold: bool = False):
        self.rule, self.reason, self.hold = rule, reason, hold

    def __repr__(self) -> str:
        return f"Veto({self.rule!r}, {self.reason!r}, hold={self.hold})"


# -- cart ---------------------------------------------------------------------


@hookspec
def niaga_line_price(
    price: Money, product: Product, quantity: int, cart: Cart, market: Market
) -> Money | None:
    """chain: adjust the unit price of a cart line (tiered prices, member prices).

    Receives the price so far (the catalog price, or the previous plugin's);
    return a new unit price in the market's currency, or None to keep it.
    """


@hookspec
def niaga_validate_cart(cart: Cart, market: Market) -> list[dict[str, str]]:
    """collect: problems that stop this cart from checking out.

    Return a list of ``{"field": ..., "message": ...}`` (empty when fine).
    Any problem makes checkout answer 422 with all of them.
    """


@hookspec
def niaga_cart_updated(cart: Cart, market: Market) -> None:
    """notify: a cart was created or changed (lines, address, delivery)."""


@hookspec
def niaga_cart_discounts(cart: Cart, market: Market) -> list[Any]:
    """collect: discounts for this cart, as ``kernel.cart.Adjustment`` with kind "discount".

    Amounts are positive Money in the cart's currency; an adjustment with a
    ``line_id`` applies to that line, one without is spread over all lines.
    """


# -- checkout ---------------------------------------------------------------


@hookspec
def niaga_before_place_order(cart: Cart, market: Market,
                             context: CheckoutContext) -> Veto | list[Veto] | None:
    """collect: last word before an order is placed (fraud rules, limits).

    ``context`` (:class:`kernel.checkout.CheckoutContext`) holds the payment
    method, the billing country, the email, a fingerprint of the card token and
    the recent-order counts for the windows ``niaga_velocity_windows`` asked for.
    Return a :class:`Veto` (or a list of them) to refuse (422 naming the rule)
    or, with ``hold=True``, to place the order on hold for review; None to let
    it pass. Any refusal wins over holds.
    """


@hookspec
def niaga_velocity_windows(market: Market) -> list[float]:
    """collect: look-back windows (hours) a risk rule needs recent-order counts for.

    When any plugin returns one, checkout counts the orders placed by the same
    customer, email and card in each window (one query) and passes them to
    ``niaga_before_place_order`` as ``context.recent``.
    """


# -- orders -------------------------------------------------------------------


@hookspec
def niaga_order_transition(order: Order, to_status: str, market: Market) -> str | None:
    """collect: guards on an order's status change; return a reason to refuse, or None."""


@hookspec
def niaga_event(event: Event, market: Market) -> None:
    """notify: a domain event from the outbox (order.placed, order.paid, stock.low, ...).

    Delivered at least once: handlers must be idempotent (use ``event.id``).
    """


# -- inventory --------------------------------------------------------------


@hookspec(firstresult=True)
def niaga_allocate_stock(request: AllocationRequest) -> list[Allocated] | None:
    """first result: which locations give how many units of each SKU.

    The kernel's default (pickup store; else one warehouse; else one store;
    else split) answers last. Return None to leave the decision to others.
    """


# -- tax --------------------------------------------------------------------


@hookspec(firstresult=True)
def niaga_calculate_taxes(request: TaxRequest) -> TaxResult | None:
    """first result: the tax on every line and on shipping.

    Return None when this plugin does not tax the request's market. Raise
    on failure: a failed tax call is never a silent zero; the market's
    ``on_tax_error`` decides between blocking checkout and a fallback rate.
    """


# -- payments -----------------------------------------------------------------


@hookspec
def niaga_payment_methods(cart: Cart, market: Market) -> list[PaymentMethod]:
    """collect: the payment methods this plugin offers for this cart."""


@hookspec(firstresult=True)
def niaga_payment_authorize(gateway: str, request: PaymentRequest) -> PaymentResult | None:
    """first result: authorize (and capture if ``request.capture``) a payment.

    Return None unless ``gateway`` is yours. A refused payment is a result with
    status "declined"; a gateway that fails raises ``kernel.errors.GatewayError``.
    """


@hookspec(firstresult=True)
def niaga_payment_capture(gateway: str, operation: PaymentOperation) -> OperationResult | None:
    """first result: capture an authorized payment (pass the idempotency key on)."""


@hookspec(firstresult=True)
def niaga_payment_void(gateway: str, operation: PaymentOperation) -> OperationResult | None:
    """first result: void an authorization that will not become an order."""


@hookspec(firstresult=True)
def niaga_payment_refund(gateway: str, operation: PaymentOperation) -> OperationResult | None:
    """first result: refund captured money, in full or in part."""


@hookspec(firstresult=True)
def niaga_webhook_parse(
    plugin: str, headers: dict[str, str], body: bytes
) -> WebhookEvent | None:
    """first result: verify and parse a webhook sent to ``/webhooks/{plugin}``.

    Return None unless ``plugin`` is yours; raise
    ``kernel.payments.WebhookRejected`` when the signature does not verify.
    """


# -- carriers -----------------------------------------------------------------


@hookspec
def niaga_delivery_options(context: DeliveryContext, market: Market) -> list[DeliveryOption]:
    """collect: delivery options (ship or pickup) this carrier offers for the cart."""


@hookspec(firstresult=True)
def niaga_create_shipment(carrier: str, order: Order, fulfillment: Fulfillment) -> Shipment | None:
    """first result: book a shipment for a fulfilment and return its tracking number."""


@hookspec(firstresult=True)
def niaga_track_shipment(carrier: str, tracking_number: str) -> TrackingStatus | None:
    """first result: the carrier's current status for a tracking number."""


# -- loyalty ------------------------------------------------------------------


@hookspec(firstresult=True)
def niaga_loyalty_quote(
    cart: Cart, market: Market, customer_id: str, points: int, balance: int
) -> LoyaltyUse | None:
    """first result: what redeeming ``points`` on this cart is worth (a discount).

    ``balance`` is the customer's balance as the kernel's ledger holds it now.
    Raise ``ValidationError.field("points", ...)`` to refuse (more than the
    balance, fewer than a minimum); return the points actually used (capped by
    your share of the order) and their value. The kernel debits them from the
    balance in the same atomic write that places the order.
    """


@hookspec(firstresult=True)
def niaga_loyalty_earn(order: Order, market: Market,
                       lifetime_base_points: int) -> tuple[int, int] | None:
    """first result: the points a paid order earns, as ``(points, base_points)``.

    ``base_points`` are before any tier multiplier (they count towards tiers);
    ``lifetime_base_points`` is the customer's total before this order. The
    kernel credits them once per order and reverses them on cancel and return.
    """


@hookspec(firstresult=True)
def niaga_loyalty_tier(lifetime_base_points: int, market: Market) -> dict[str, Any] | None:
    """first result: the tier for a lifetime of base points, as ``{"name", "multiplier"}``."""


# -- customers ----------------------------------------------------------------


@hookspec
def niaga_customer_export(customer: Customer, market: Market) -> dict[str, Any] | None:
    """collect: the personal data this plugin holds about ``customer`` (GDPR/CCPA export).

    Return a JSON-able dict, or None when you hold nothing. The export files each answer
    under the plugin's name and the market: ``plugins: {name: {market: data}}``.
    """


@hookspec
def niaga_customer_erase(customer: Customer, market: Market) -> None:
    """notify: erase the personal data this plugin holds about ``customer``.

    Called before the kernel anonymises its own documents, with the profile as it still
    is (email, name, phone). Key your data by ``customer.id``: a repeated erase passes the
    already erased profile.
    """


# -- localisation -------------------------------------------------------------


@hookspec(firstresult=True)
def niaga_convert_price(
    product: Product, market: Market, rates: dict[str, dict[str, str]]
) -> ConvertedPrice | Money | None:
    """first result: a price for a product that has none in this market (currency conversion).

    ``rates`` are the rates the merchant set through ``PUT /admin/fx/rates``, shared by
    every process through the store: ``{base currency: {currency: rate}}``; they are
    fresher than any rate table in the plugin's settings.

    Return a :class:`kernel.catalog.ConvertedPrice` to have the rate snapshot
    (base price, rate, source) kept on the cart line and the order line, or a
    bare Money; None when the product is not sold in the market.
    """


@hookspec(firstresult=True)
def niaga_format_money(money: Money, locale: str) -> str | None:
    """first result: money formatted for display; the kernel's Babel formatter answers last."""

