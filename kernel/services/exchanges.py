"""Exchanges: a return of some units plus a new order for the replacement items, linked
both ways (``Order.exchange_of`` on the new one, ``exchanged_for`` and an ``exchanged``
history entry on the original).

The steps run in an order that leaves nothing half done:

1. plan the return and check the items, the delivery and the payment method (no writes:
   bad input changes nothing);
2. build the replacement cart (same market, channel, customer and address) and check it
   out through the normal checkout: stock reserved, payment authorized, order placed. If
   that fails (no stock, declined) the cart is closed and nothing else happened;
3. link the new order to the original;
4. the return on the original: the refund through its gateway, then one write with the
   return, the ``exchanged`` entry and the idempotency record (what a replay answers).
   If this fails, the new order is cancelled (payment voided or refunded, stock released).

The cart id derives from (original, key, body), so a retry after a crash finds the same
cart and the checkout's own idempotency returns the same new order; the return then
completes. A replay of a finished exchange returns the first answer.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import msgspec

from kernel.cart import Cart, Line, empty_cart
from kernel.errors import (
    Conflict,
    IdempotencyMismatch,
    NiagaError,
    OutOfStock,
    ReplayedFailure,
    ValidationError,
    VersionConflict,
)
from kernel.ids import new_id
from kernel.money import Money
from kernel.orders import Order
from kernel.runtime import Niaga
from kernel.services import checkout as checkouts
from kernel.services import orders, returns
from kernel.services.carts import (
    as_delivery,
    delivery_options_for,
    market_availability,
    methods_for,
    price_with,
)
from kernel.store.base import IdempotencyRecord

log = logging.getLogger("niaga.exchanges")


class ExchangeResult(msgspec.Struct, kw_only=True):
    original: Order  # after the return
    order: Order  # the replacement


def _mismatch() -> IdempotencyMismatch:
    return IdempotencyMismatch(
        "this Idempotency-Key was used with a different body",
        errors=[{"field": "Idempotency-Key", "message": "reused with a different body"}])


async def _replayed(ctx: Niaga, scope: str, key: str, body_hash: str) -> ExchangeResult | None:
    record = await ctx.store.get_idempotency(scope, key)
    if record is None:
        return None
    if record.request_hash != body_hash:
        raise _mismatch()
    return msgspec.json.decode(record.body, type=ExchangeResult)


def _cart_id(order_id: str, key: str, body_hash: str) -> str:
    # unguessable as the order id it derives from (128 random bits)
    digest = hashlib.sha256(f"exchange\x00{order_id}\x00{key}\x00{body_hash}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


async def _build_cart(ctx: Niaga, original: Order, cart_id: str, items: list[dict[str, Any]],
                      payment: dict[str, Any], option_id: str | None) -> Cart:
    """The replacement cart, priced, with its delivery chosen; 422/409 naming the field."""
    market = ctx.market(original.market)
    cart = empty_cart(cart_id, market.code, original.channel, market.currency,
                      include_tax=market.prices_include_tax,
                      customer_id=original.customer_id, now=ctx.clock())
    # never newer than the customer's own carts: it must not become their active cart
    cart.updated_at = original.created_at
    cart.address = original.address
    products = await ctx.store.get_products({item["sku"] for item in items})
    zero = Money.zero(cart.currency)
    where: dict[str, int] = {}  # sku -> the first items[i] naming it
    for i, item in enumerate(items):
        sku = item["sku"]
        if sku not in products:
            raise ValidationError.field(f"items[{i}].sku", f"no product {sku!r}")
        line = cart.line_for_sku(sku)
        if line is not None:
            line.quantity += item["quantity"]
            continue
        where[sku] = i
        cart.lines.append(Line(id=new_id(), sku=sku, name=sku, quantity=item["quantity"],
                               unit_price=zero, subtotal=zero, discount=zero, tax=zero,
                               total=zero))
    for sku in await price_with(ctx, cart, products):
        raise ValidationError.field(f"items[{where[sku]}].sku",
                                    f"{sku} is not sold in market {market.code}")
    available = await market_availability(ctx, market.code, [li.sku for li in cart.lines])
    short = [li for li in cart.lines if li.quantity > available[li.sku]]
    if short:
        raise OutOfStock(
            f"not enough stock for {', '.join(li.sku for li in short)}; nothing was changed",
            errors=[{"field": f"items[{where[li.sku]}].quantity",
                     "message": f"{li.sku}: {available[li.sku]} available"} for li in short],
            skus=[li.sku for li in short])
    options = await delivery_options_for(ctx, cart)
    if option_id is not None:
        option = next((o for o in options if o.id == option_id), None)
        if option is None:
            raise ValidationError.field(
                "delivery_option_id", f"{option_id!r} is not offered for these items "
                                      f"(offered: {', '.join(o.id for o in options) or 'none'})")
    else:
        # the original's option if still offered, else the first of the same kind
        kind = original.delivery.kind if original.delivery else None
        same = original.delivery.option_id if original.delivery else None
        option = (next((o for o in options if o.id == same), None)
                  or next((o for o in options if o.kind == kind), None))
        if option is None:
            raise ValidationError.field(
                "delivery_option_id", f"the original's delivery is not offered for these "
                                      f"items; choose one of: "
                                      f"{', '.join(o.id for o in options) or 'none'}")
    cart.delivery = as_delivery(option)
    await price_with(ctx, cart, products)
    method = payment.get("method")
    offered = [m.id for m in methods_for(ctx, cart)]
    if method not in offered:
        raise ValidationError.field("payment.method",
                                    f"{method!r} is not offered for this order "
                                    f"(offered: {', '.join(offered) or 'none'})")
    return cart


async def _place(ctx: Niaga, original: Order, items: list[dict[str, Any]],
                 payment: dict[str, Any], option_id: str | None, key: str,
                 body_hash: str) -> Order:
    """The replacement order through the normal checkout (or the one a retry placed)."""
    cart_id = _cart_id(original.id, key, body_hash)
    pay_hash = checkouts.request_hash({"payment": payment})
    cart = await ctx.store.get_cart(cart_id)
    if cart is not None and cart.status != "open":
        placed = await ctx.store.get_order_by_cart(cart_id)
        if placed is not None:
            return placed
        earlier = cart.failed_checkouts.get(key)
        if earlier is not None:
            raise ReplayedFailure(earlier.status, earlier.problem)
    fresh = await _build_cart(ctx, original, cart_id, items, payment, option_id)
    if cart is None:
        await ctx.store.create_cart(fresh)
    else:  # an attempt that stopped early: the same cart, priced again
        fresh.version = cart.version + 1
        fresh.failed_checkouts = cart.failed_checkouts
        await ctx.store.save_cart(fresh, cart.version)
    try:
        order, _created = await checkouts.checkout(ctx, cart_id, payment, key, pay_hash)
    except NiagaError:
        await _close(ctx, cart_id)
        raise
    return order


async def _close(ctx: Niaga, cart_id: str) -> None:
    """A failed replacement cart is closed, so it never shows as the customer's cart."""
    for _ in range(3):
        cart = await ctx.store.get_cart(cart_id)
        if cart is None or cart.status != "open":
            return
        version = cart.version
        cart.status = "checked_out"
        cart.version += 1
        try:
            await ctx.store.save_cart(cart, version)
            return
        except VersionConflict:
            continue


async def _link(ctx: Niaga, new: Order, original: Order) -> Order:
    for _ in range(3):
        if new.exchange_of == original.id:
            return new
        new.exchange_of = original.id
        new.record(ctx.clock(), "exchange_of", order_id=original.id, number=original.number)
        try:
            return await orders._save(ctx, new, [])
        except VersionConflict:
            new = await orders.load_order(ctx, new.id)
    raise Conflict(f"order {new.number} kept changing; retry the exchange")


async def exchange(ctx: Niaga, order_id: str, lines: list[dict[str, Any]], restock: bool,
                   items: list[dict[str, Any]], payment: dict[str, Any],
                   delivery_option_id: str | None, key: str,
                   body_hash: str) -> tuple[ExchangeResult, bool]:
    """The exchange and whether it happened now (False: a replay of the first answer)."""
    scope = f"exchange:{order_id}"
    if (first := await _replayed(ctx, scope, key, body_hash)) is not None:
        return first, False
    if not isinstance(payment.get("method"), str) or not payment["method"]:
        raise ValidationError.field("payment.method", "name a payment method")
    original = await orders.load_order(ctx, order_id)
    plan = await returns.plan(ctx, original, returns.items_of(lines), restock)
    new = await _place(ctx, original, items, payment, delivery_option_id, key, body_hash)
    if new.status == "cancelled":
        raise Conflict(f"the replacement order {new.number} of this exchange was cancelled; "
                       "start again with a new Idempotency-Key")

    def remember(done: Order) -> IdempotencyRecord:
        body = msgspec.json.encode(ExchangeResult(original=done, order=new))
        return IdempotencyRecord(scope=scope, key=key, request_hash=body_hash, status=200,
                                 body=body)

    try:
        new = await _link(ctx, new, original)
        done = await returns.execute(ctx, original, plan, f"{original.id}:exchange:{key}",
                                     remember, exchange=new)
    except Exception:
        # a twin request with the same key may have finished the exchange meanwhile
        if (twin := await _replayed(ctx, scope, key, body_hash)) is not None:
            return twin, False
        try:
            await orders.cancel(ctx, new.id, "exchange not completed", source="exchange")
        except Exception:  # the original error is what the caller must see
            log.exception("could not cancel order %s of a failed exchange", new.id)
        raise
    return ExchangeResult(original=done, order=new), True
