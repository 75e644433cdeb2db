"""Checkout: price → discounts → delivery → tax → reserve → authorize → place, or undo.

Round trips are the budget: one cart read, one product read, one stock read,
one transaction of conditional stock updates, the gateway call, and one
transaction that closes the cart and writes the order and its events.
Anything failing after the reservation releases it; anything failing after
authorization voids it. ``Idempotency-Key`` is kept on the order: a replay
with the same key and body returns that order; a different body is a 422.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import msgspec

from kernel.cart import MAX_REMEMBERED_FAILURES, Cart, FailedCheckout, units_by_sku
from kernel.catalog import Location
from kernel.checkout import (
    CheckoutContext,
    RecentOrders,
    billing_country,
    card_fingerprint,
    normalise_email,
)
from kernel.errors import (
    Busy,
    Conflict,
    GatewayError,
    IdempotencyMismatch,
    NiagaError,
    NotFound,
    OutOfStock,
    PaymentDeclined,
    ReplayedFailure,
    ValidationError,
    VersionConflict,
)
from kernel.events import Event
from kernel.hookspecs import Veto
from kernel.ids import checkout_ids, new_id
from kernel.inventory import AllocationRequest, Reservation, shortfalls
from kernel.markets import Market
from kernel.money import Money
from kernel.orders import Allocated, HistoryEntry, Order, OrderLine, Payment
from kernel.payments import PaymentRequest, PaymentResult
from kernel.plugins import MarketPlugins
from kernel.runtime import Niaga
from kernel.services import loyalty, payments
from kernel.services.carts import (
    StockMap,
    check_channel,
    load_cart,
    methods_for,
    price_with,
    requote_delivery,
)
from kernel.store.base import StockShortage

log = logging.getLogger("niaga.checkout")
# An order is placed only while its stock hold has this long left (or a fifth of a shorter
# window): past its window the sweeper may release the hold, and an order must never stand
# on stock given back.
HOLD_MARGIN = 60.0


def request_hash(body: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()


async def checkout(ctx: Niaga, cart_id: str, payment: dict[str, Any], idempotency_key: str,
                   body_hash: str, channel: str | None = None) -> tuple[Order, bool]:
    """Place an order from a cart. Returns (order, created); created is False for a replay.
    ``channel``: where the checkout happens (a POS till for a web cart, say); the order
    records it with every other channel that touched the cart."""
    if not idempotency_key or len(idempotency_key) > 200:
        raise ValidationError.field("Idempotency-Key", "a key of 1 to 200 characters is required")
    cart = await load_cart(ctx, cart_id)
    check_channel(ctx.market(cart.market), channel)
    if cart.status == "merged":
        cart.ensure_open()  # 409 naming the cart its lines went into
    if cart.status != "open":
        return await _replay(ctx, cart, idempotency_key, body_hash), False
    if channel is not None and channel not in cart.channels:
        cart.channels.append(channel)  # saved with the closed cart, copied onto the order
    earlier = cart.failed_checkouts.get(idempotency_key)
    if earlier is not None:
        if earlier.request_hash != body_hash:
            raise _mismatch()
        raise ReplayedFailure(earlier.status, earlier.problem)
    try:
        return await _checkout(ctx, cart, payment, idempotency_key, body_hash)
    except (OutOfStock, PaymentDeclined, GatewayError) as exc:
        # it started (stock, money): the same key gets the same answer from now on
        await _remember_failure(ctx, cart.id, idempotency_key, body_hash, exc)
        raise


async def _checkout(ctx: Niaga, cart: Cart, payment: dict[str, Any], idempotency_key: str,
                    body_hash: str) -> tuple[Order, bool]:
    market = ctx.market(cart.market)
    plugins = ctx.plugins_for(market.code)
    method = payment.get("method")
    if not isinstance(method, str) or not method:
        raise ValidationError.field("payment.method", "name a payment method")

    # price → discounts → delivery → tax → total, with the delivery re-quoted on the same
    # stock read that allocation uses below
    version = cart.version
    products = await ctx.store.get_products(line.sku for line in cart.lines)
    dropped = await price_with(ctx, cart, products)
    locations = await ctx.locations(market.code)
    # advisory: the reserve below is the conditional write that decides
    stock = await ctx.store.get_stock({line.sku for line in cart.lines},
                                      [loc.id for loc in locations], fresh=False)
    chosen = cart.delivery
    if await requote_delivery(ctx, cart, stock):
        await price_with(ctx, cart, products)
    context = await _context(ctx, cart, plugins, market, method, payment)
    holds = _ready(cart, dropped, plugins, market, context, lost_delivery=chosen is not None
                   and cart.delivery is None)
    offered = [m.id for m in methods_for(ctx, cart)]
    if method not in offered:
        raise ValidationError.field(
            "payment.method", f"{method!r} is not offered for this cart "
                              f"(offered: {', '.join(offered) or 'none'})")

    # reserve stock: one conditional update per (sku, location), all or nothing
    order_id, number = checkout_ids(cart.id, idempotency_key, market.code)
    now = ctx.clock()
    allocations = _allocate(cart, market, plugins, locations, stock)
    reservations = [Reservation(order_id=order_id, sku=a.sku, location_id=a.location_id,
                                quantity=a.quantity,
                                expires_at=now + market.reservation_minutes * 60)
                    for a in allocations]
    try:
        await ctx.store.reserve(reservations, market.code, [])
    except StockShortage as exc:
        skus = sorted({sku for sku, _ in exc.rows})
        raise OutOfStock(
            f"not enough stock for {', '.join(skus)}; nothing was reserved or charged",
            errors=[{"field": "lines", "message": f"{sku}: not enough stock"} for sku in skus],
            skus=skus,
        ) from exc

    # authorize; from here on a failure must release the stock
    try:
        result = await _authorize(ctx, plugins, method, PaymentRequest(
            order_id=order_id, order_number=number, market=market.code, amount=cart.total,
            data={k: v for k, v in payment.items() if k != "method"},
            idempotency_key=f"{cart.id}:{idempotency_key}",
            email=cart.address.email if cart.address else None,
        ))
    except BaseException:
        await _release(ctx, order_id)
        raise
    hold = market.reservation_minutes * 60
    if ctx.clock() > reservations[0].expires_at - min(HOLD_MARGIN, hold / 5):
        # the sweeper may release a hold past its window: never place an order on stock it
        # may have given back (a gateway that answered after many minutes)
        await _undo_payment(ctx, plugins, method, result, order_id, cart.id, idempotency_key)
        await _release(ctx, order_id)
        late = Conflict(f"the payment took longer than the {market.reservation_minutes}-minute "
                        "stock hold; nothing was charged, check out again")
        await _remember_failure(ctx, cart.id, idempotency_key, body_hash, late)
        raise late

    # place the order + events in one atomic write; on failure void and release
    order = _build_order(cart, market, order_id, number, method, result, allocations, now,
                         idempotency_key, body_hash, holds, context)
    closed = msgspec.structs.replace(cart, status="checked_out", version=version + 1,
                                     updated_at=now)
    events = [Event(id=new_id(), type="order.placed", market=market.code, subject=order.id,
                    at=now, data={"number": order.number, "status": order.status,
                                  "total": order.total.format_amount(),
                                  "currency": order.currency, "channel": order.channel})]
    if order.status == "on_hold":
        events.append(Event(id=new_id(), type="order.held", market=market.code,
                            subject=order.id, at=now, data=dict(order.hold or {})))
    if order.payment.status == "captured":
        events.append(Event(id=new_id(), type="order.paid", market=market.code,
                            subject=order.id, at=now,
                            data={"number": order.number, "customer_id": order.customer_id}))
    try:
        # points redeemed are debited in this same write (a balance too low: 409, no order)
        await ctx.store.place_order(order, closed, version, events, loyalty.redemption(order))
    except BaseException as exc:
        winner = None
        if isinstance(exc, VersionConflict | Conflict):
            fresh = await ctx.store.get_cart(cart.id)
            if fresh is not None and fresh.status != "open":
                winner = await ctx.store.get_order_by_cart(cart.id)
        # a twin of this request (same key) may have won with the very payment we hold:
        # the gateway deduplicated on the key, so undoing ours would refund the winner's
        if winner is None or winner.payment.reference != result.reference:
            await _undo_payment(ctx, plugins, method, result, order_id, cart.id,
                                idempotency_key)
        await _release(ctx, order_id)
        if winner is not None:
            return await _replay(ctx, fresh, idempotency_key, body_hash), False
        if isinstance(exc, NiagaError) and result.status in ("authorized", "captured"):
            # the gateway answers this key with the payment just undone: a retry with it
            # must get this answer, never an order standing on a voided payment
            if isinstance(exc, Busy):
                exc = Conflict("the store stayed busy while placing the order; the payment "
                               "was undone and nothing charged: check out again with a new "
                               "Idempotency-Key")
            await _remember_failure(ctx, cart.id, idempotency_key, body_hash, exc)
            raise exc
        raise
    ctx.dispatcher.kick()
    return order, True


async def _context(ctx: Niaga, cart: Cart, plugins: MarketPlugins, market: Market,
                   method: str, payment: dict[str, Any]) -> CheckoutContext:
    """What the risk hooks may know beyond the cart; order counts only if a plugin asks."""
    email = normalise_email(cart.address.email if cart.address else None)
    fingerprint = card_fingerprint(method, payment)
    windows = plugins.collect("niaga_velocity_windows", market=market)
    for hours in windows:
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not hours > 0:
            raise GatewayError(f"a plugin asked for a velocity window of {hours!r} hours")
    recent: dict[float, RecentOrders] = {}
    wanted = sorted({float(h) for h in windows})
    if wanted:
        now = ctx.clock()
        counts = await ctx.store.count_recent_orders(
            [now - h * 3600 for h in wanted], customer_id=cart.customer_id, email=email,
            card_fingerprint=fingerprint)
        recent = {h: RecentOrders(window_hours=h, **c)
                  for h, c in zip(wanted, counts, strict=True)}
    return CheckoutContext(payment_method=method, billing_country=billing_country(payment),
                           email=email, card_fingerprint=fingerprint, recent=recent)


def _ready(cart: Cart, dropped: list[str], plugins: MarketPlugins, market: Market,
           context: CheckoutContext, *, lost_delivery: bool = False) -> list[Veto]:
    """Everything a cart needs before stock is touched; each problem names its field.
    Returns the vetoes that hold the order for review rather than refuse it."""
    if dropped:
        raise Conflict(f"no longer sold here: {', '.join(dropped)}; review the cart",
                       errors=[{"field": "lines", "message": f"{sku} is no longer sold"}
                               for sku in dropped])
    problems: list[dict[str, str]] = []
    if not cart.lines:
        problems.append({"field": "lines", "message": "the cart is empty"})
    if cart.delivery is None:
        problems.append({"field": "delivery", "message":
                         "the chosen delivery option is no longer offered; choose again"
                         if lost_delivery else "choose a delivery option"})
    elif cart.delivery.kind == "ship" and cart.address is None:
        problems.append({"field": "address", "message": "a shipping address is required"})
    if cart.loyalty is not None and cart.customer_id is None:
        problems.append({"field": "loyalty", "message": "points need a signed-in customer"})
    if cart.tax_estimated:
        problems.append({"field": "address.region",
                         "message": "tax depends on the address; set country and region"})
    problems += plugins.collect("niaga_validate_cart", cart=cart, market=market)
    if problems:
        raise ValidationError("the cart cannot be checked out yet", errors=problems)
    vetoes = [v for v in plugins.collect("niaga_before_place_order", cart=cart, market=market,
                                         context=context)
              if isinstance(v, Veto)]
    refusals = [v for v in vetoes if not v.hold]
    if refusals:
        veto = refusals[0]
        raise ValidationError(f"refused by rule {veto.rule}: {veto.reason}",
                              errors=[{"field": "cart", "message": f"{v.rule}: {v.reason}"}
                                      for v in refusals], rule=veto.rule)
    return [v for v in vetoes if v.hold]


def _allocate(cart: Cart, market: Market, plugins: MarketPlugins, locations: list[Location],
              stock: StockMap) -> list[Allocated]:
    needs = units_by_sku(cart.lines)
    delivery = cart.delivery
    assert delivery is not None
    request = AllocationRequest(market=market.code, needs=needs, kind=delivery.kind,
                                pickup_location_id=delivery.location_id, locations=locations,
                                stock=stock)
    allocations = plugins.first("niaga_allocate_stock", request=request)
    if not allocations:
        short = shortfalls(request)
        if delivery.location_id and not short:
            raise OutOfStock(f"{delivery.label} cannot fill this cart; choose another option",
                             errors=[{"field": "delivery", "message": "store lacks stock"}])
        raise OutOfStock(
            "not enough stock for " + ", ".join(f"{s} ({a} available)" for s, a in short.items()),
            errors=[{"field": "lines", "message": f"{s}: {a} available"}
                    for s, a in short.items()], skus=sorted(short))
    return allocations


async def _authorize(ctx: Niaga, plugins: MarketPlugins, method: str,
                     request: PaymentRequest) -> PaymentResult:
    try:
        result = await payments.authorize(ctx, method, request)
    except GatewayError:
        await _void_unknown(ctx, plugins, method, request)
        raise
    if result.status == "declined":
        raise PaymentDeclined(f"{method}: {result.message or 'payment declined'}",
                              gateway=method)
    if result.amount != request.amount:
        await _void(ctx, plugins, method, result, request.order_id, request.idempotency_key)
        raise GatewayError(f"{method} authorized {result.amount}, not {request.amount}")
    return result


async def _void_unknown(ctx: Niaga, plugins: MarketPlugins, method: str,
                        request: PaymentRequest) -> None:
    """The gateway failed without an answer (a timeout): it may have authorized anyway.
    Ask once more with the same idempotency key, which a gateway answers with the first
    outcome and never charges twice, and void whatever it holds."""
    try:
        result = await payments.authorize(ctx, method, request)
    except Exception:
        log.warning("payment of unplaced order %s: the gateway %s gave no outcome; reconcile "
                    "key %s with it", request.order_id, method, request.idempotency_key)
        return
    if result.status in ("authorized", "captured"):
        await _void(ctx, plugins, method, result, request.order_id, request.idempotency_key)


async def _void(ctx: Niaga, plugins: MarketPlugins, method: str, result: PaymentResult,
                order_id: str, key: str) -> None:
    action = "refund" if result.status == "captured" else "void"
    operation = payments.operation(order_id, result.reference, result.amount, f"{key}:undo")
    try:
        await payments.operate(ctx, plugins.market.code, method, action, operation)
    except Exception:  # the order is not placed either way; flag loudly for reconciliation
        log.exception("could not %s payment %s of unplaced order %s", action, result.reference,
                      order_id)


async def _undo_payment(ctx: Niaga, plugins: MarketPlugins, method: str, result: PaymentResult,
                        order_id: str, cart_id: str, key: str) -> None:
    if result.status in ("authorized", "captured"):
        await _void(ctx, plugins, method, result, order_id, f"{cart_id}:{key}")


async def _release(ctx: Niaga, order_id: str) -> None:
    try:
        await ctx.store.release_orphans(order_id)
    except Exception:  # the sweeper releases it after the reservation expires
        log.exception("could not release reservation of %s now; the sweeper will", order_id)


async def _replay(ctx: Niaga, cart: Cart, key: str, body_hash: str) -> Order:
    order = await ctx.store.get_order_by_cart(cart.id)
    if order is None:
        raise NotFound(f"cart {cart.id} is closed without an order")
    if order.idempotency_key != key:
        raise Conflict(f"cart {cart.id} is already checked out as order {order.number}",
                       order_id=order.id)
    if order.request_hash != body_hash:
        raise _mismatch()
    return order


def _mismatch() -> IdempotencyMismatch:
    return IdempotencyMismatch(
        "this Idempotency-Key was used with a different body",
        errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}])


async def _remember_failure(ctx: Niaga, cart_id: str, key: str, body_hash: str,
                            exc: NiagaError) -> None:
    """Keep a started checkout's failure on the cart (best effort: the caller still gets it)."""
    problem = {"title": exc.title, "code": exc.code, "detail": exc.detail,
               "errors": exc.errors, "extra": exc.extra}
    for _ in range(3):
        cart = await ctx.store.get_cart(cart_id)
        if cart is None or cart.status != "open":
            return
        version = cart.version
        cart.failed_checkouts[key] = FailedCheckout(request_hash=body_hash, status=exc.status,
                                                    problem=problem)
        while len(cart.failed_checkouts) > MAX_REMEMBERED_FAILURES:
            cart.failed_checkouts.pop(next(iter(cart.failed_checkouts)))
        # no version bump: what the customer sees did not change. Still conditioned on the
        # version, so this never overwrites an edit; losing a race only loses this record.
        try:
            await ctx.store.save_cart(cart, version)
            return
        except VersionConflict:
            continue


def _build_order(cart: Cart, market: Market, order_id: str, number: str, method: str,
                 result: PaymentResult, allocations, now: float, key: str,
                 body_hash: str, holds: list[Veto], context: CheckoutContext) -> Order:
    cur = cart.currency
    zero = Money.zero(cur)
    captured = result.amount if result.status == "captured" else zero
    status = {"captured": "paid", "authorized": "authorized"}.get(result.status,
                                                                  "pending_payment")
    payment = Payment(method=method, gateway=method, status=result.status,
                      authorized=result.amount if result.status != "pending" else zero,
                      captured=captured, refunded=zero, reference=result.reference,
                      instructions=dict(result.instructions),
                      ship_unpaid=result.status == "pending" and result.ship_unpaid)
    due = status == "pending_payment" and result.expires
    if holds:  # placed straight into review; release leads to where the payment says
        status = "on_hold"
    history = [HistoryEntry(at=now, event="placed",
                            detail={"to": status, "channel": cart.channel,
                                    "payment": result.status})]
    if holds:
        history.append(HistoryEntry(at=now, event="held", detail={
            "rules": [v.rule for v in holds], "reason": holds[0].reason}))
    return Order(
        id=order_id, number=number, cart_id=cart.id, market=market.code, channel=cart.channel,
        channels=list(cart.channels), customer_id=cart.customer_id, currency=cur, status=status,
        lines=[OrderLine(**{f: getattr(li, f) for f in li.__struct_fields__})
               for li in cart.lines],
        address=cart.address, delivery=cart.delivery, loyalty=cart.loyalty,
        subtotal=cart.subtotal, discount_total=cart.discount_total,
        shipping_total=cart.shipping_total, tax_total=cart.tax_total, total=cart.total,
        prices_include_tax=cart.prices_include_tax, money_policy=market.policy,
        adjustments=list(cart.adjustments), payment=payment, allocations=list(allocations),
        history=history, created_at=now,
        payment_due_at=now + market.payment_window_hours * 3600 if due else None,
        idempotency_key=key, request_hash=body_hash,
        hold={"rule": holds[0].rule, "reason": holds[0].reason} if holds else None,
        email=context.email, card_fingerprint=context.card_fingerprint,
    )
