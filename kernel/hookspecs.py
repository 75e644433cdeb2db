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
    from kernel.catalog import Product
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
def niaga_before_place_order(cart: Cart, market: Market) -> Veto | None:
    """collect: last word before an order is placed (fraud rules, limits).

    Return a :class:`Veto` to refuse (422 naming the rule) or, with
    ``hold=True``, to place the order on hold for review; None to let it pass.
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
    cart: Cart, market: Market, customer_id: str, points: int
) -> LoyaltyUse | None:
    """first result: what redeeming ``points`` on this cart is worth (a discount)."""


# -- localisation -------------------------------------------------------------


@hookspec(firstresult=True)
def niaga_convert_price(product: Product, market: Market) -> Money | None:
    """first result: a price for a product that has none in this market (currency conversion)."""


@hookspec(firstresult=True)
def niaga_format_money(money: Money, locale: str) -> str | None:
    """first result: money formatted for display; the kernel's Babel formatter answers last."""

