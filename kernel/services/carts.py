"""Cart use cases. Each mutation: read, change, re-price, save conditioned on the version.

A save that loses a race re-reads and re-applies the change (up to three times)
so two channels editing one cart never lose a line; past that the caller gets
a clear 409.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from kernel.cart import (
    MAX_LINES,
    Address,
    Cart,
    Delivery,
    Line,
    check_quantity,
    empty_cart,
)
from kernel.catalog import Location, Product
from kernel.delivery import DeliveryContext, DeliveryOption
from kernel.errors import (
    Conflict,
    Forbidden,
    NotFound,
    OutOfStock,
    ValidationError,
    VersionConflict,
)
from kernel.ids import new_id
from kernel.inventory import StockLevel
from kernel.markets import Market
from kernel.money import Money
from kernel.payments import PaymentMethod
from kernel.pricing import price_cart, unit_price
from kernel.runtime import Niaga
from kernel.services import loyalty
from kernel.store.base import Customer

RETRIES = 3
# Where a request names the channel it comes from: the HTTP API's header. A cart and its
# order record every channel that touched the cart (``Cart.channels``).
CHANNEL_FIELD = "Niaga-Channel"
StockMap = dict[tuple[str, str], StockLevel]


async def load_cart(ctx: Niaga, cart_id: str) -> Cart:
    cart = await ctx.store.get_cart(cart_id)
    if cart is None:
        raise NotFound(f"no cart {cart_id}")
    return cart


async def pickup_location(ctx: Niaga, cart: Cart) -> Location | None:
    if cart.delivery is None or cart.delivery.kind != "pickup":
        return None
    return next((loc for loc in await ctx.locations(cart.market)
                 if loc.id == cart.delivery.location_id), None)


async def reprice(ctx: Niaga, cart: Cart) -> list[str]:
    """Re-price in place with current products and plugins; returns the SKUs dropped."""
    products = await ctx.store.get_products(line.sku for line in cart.lines)
    return await price_with(ctx, cart, products)


async def price_with(ctx: Niaga, cart: Cart, products: dict[str, Product]) -> list[str]:
    market = ctx.market(cart.market)
    plugins = ctx.plugins_for(cart.market)
    pickup = await pickup_location(ctx, cart)
    rates = await ctx.fx_rates()
    if plugins.blocking:  # a tax service over the network: keep the event loop free
        return await ctx.offload(price_cart, cart, market, products, plugins, pickup, rates,
                                 market=market.code, plugin=plugins.blocking)
    return price_cart(cart, market, products, plugins, pickup, rates)


async def view_cart(ctx: Niaga, cart_id: str) -> Cart:
    """A cart as it prices now (deleted products dropped); stored as is until the next change."""
    return await _priced_now(ctx, await load_cart(ctx, cart_id))


async def _priced_now(ctx: Niaga, cart: Cart) -> Cart:
    if cart.status == "open":
        skus = [line.sku for line in cart.lines]
        await reprice(ctx, cart)
        _warn_dropped(cart, skus)
    return cart


async def customer_cart(ctx: Niaga, customer_id: str, market_code: str) -> Cart:
    """The customer's one open cart in a market, as it prices now (404 if none)."""
    ctx.market(market_code)
    cart = await ctx.store.find_open_cart(customer_id, market_code)
    if cart is None:
        raise NotFound(f"no open cart in market {market_code}")
    return await _priced_now(ctx, cart)


def _warn_dropped(cart: Cart, skus: list[str]) -> None:
    """Warn about each SKU that pricing dropped (deleted, or not sold in the cart's market)."""
    kept = {line.sku for line in cart.lines}
    for sku in dict.fromkeys(skus):
        if sku not in kept:
            cart.warn("not_sold", f"{sku} is not sold in market {cart.market}; removed", sku)


async def create_cart(ctx: Niaga, market_code: str, channel: str,
                      customer: Customer | None) -> Cart:
    return (await open_cart(ctx, market_code, channel, customer))[0]


async def open_cart(ctx: Niaga, market_code: str, channel: str,
                    customer: Customer | None) -> tuple[Cart, bool]:
    """A new cart, or, for a customer who already has an open cart in the market, that cart
    (one active cart per customer and market; the channel asking is recorded on it).
    Returns (cart, created)."""
    market = ctx.market(market_code)
    check_channel(market, channel, "channel")
    if customer is not None:
        existing = await ctx.store.find_open_cart(customer.id, market.code)
        if existing is not None and channel in existing.channels:
            return await _priced_now(ctx, existing), False
        if existing is not None:
            try:
                return await mutate(ctx, existing.id, _nothing, channel), False
            except Conflict as exc:  # checked out meanwhile: start a new one below
                if isinstance(exc, VersionConflict):
                    raise
    now = ctx.clock()
    cart = empty_cart(new_id(), market.code, channel, market.currency,
                      include_tax=market.prices_include_tax,
                      customer_id=customer.id if customer else None, now=now)
    await reprice(ctx, cart)
    await ctx.store.create_cart(cart)
    _updated(ctx, cart)
    return cart, True


async def _nothing(cart: Cart) -> None:
    """A change that only records the channel touching the cart (``mutate`` does that)."""


def check_channel(market: Any, channel: str | None, field: str = CHANNEL_FIELD) -> None:
    """A channel the market sells through (None: the request named none)."""
    if channel is not None and channel not in market.channels:
        raise ValidationError.field(
            field, f"{channel!r} is not a channel of market {market.code} "
                   f"({', '.join(market.channels)})")


def _updated(ctx: Niaga, cart: Cart) -> None:
    market = ctx.market(cart.market)
    ctx.plugins_for(cart.market).notify("niaga_cart_updated", cart=cart, market=market)


async def mutate(ctx: Niaga, cart_id: str, change: Callable[[Cart], Awaitable[None]],
                 channel: str | None = None, *, requote: bool = True,
                 points_quoted: bool = False, channel_market: str | None = None) -> Cart:
    """Apply ``change``, re-price (re-quoting the chosen delivery and any loyalty points),
    and save; on a lost race, re-read and re-apply. The cart's ``warnings`` say what this
    change did unasked (``change`` adds its own; dropped lines are added here).
    ``channel_market``: the market the channel must belong to (default: the cart's)."""
    for attempt in range(RETRIES):
        cart = await load_cart(ctx, cart_id)
        cart.ensure_open()
        check_channel(ctx.market(channel_market or cart.market), channel)
        version = cart.version
        cart.warnings = []
        await change(cart)
        skus = [line.sku for line in cart.lines]
        products = await ctx.store.get_products(skus)
        if cart.loyalty is not None and not points_quoted:
            await _requote_points(ctx, cart, products)
        await price_with(ctx, cart, products)
        if requote and await requote_delivery(ctx, cart):
            await price_with(ctx, cart, products)  # the delivery price moved
        _warn_dropped(cart, skus)
        cart.version = version + 1
        cart.touch(channel, ctx.clock())
        try:
            await ctx.store.save_cart(cart, version)
        except VersionConflict:
            if attempt == RETRIES - 1:
                raise
            continue
        _updated(ctx, cart)
        return cart
    raise AssertionError("unreachable")  # pragma: no cover


async def _requote_points(ctx: Niaga, cart: Cart, products: dict[str, Product]) -> None:
    """Points on a changed cart are quoted again for what it holds now (the plugin's cap,
    the balance now); they can shrink, never grow. Points no longer usable on it (below
    the plugin's minimum, none left) are dropped: the cart shows ``loyalty: null``."""
    use = cart.loyalty
    assert use is not None
    cart.loyalty = None
    if cart.customer_id is None:
        return
    await price_with(ctx, cart, products)
    with contextlib.suppress(ValidationError):  # no longer usable here: dropped
        cart.loyalty = await loyalty.quote(ctx, cart, cart.customer_id, use.points,
                                           at_most_balance=True)
    if cart.loyalty is None:
        cart.warn("loyalty_cleared", f"{use.points} points can no longer be used on this cart")


async def market_availability(ctx: Niaga, market: str, skus: list[str]) -> dict[str, int]:
    """Units available to sell in a market, per SKU, over all its locations."""
    locations = [loc.id for loc in await ctx.locations(market)]
    stock = await ctx.store.get_stock(skus, locations, fresh=False)
    totals = dict.fromkeys(skus, 0)
    for (sku, _loc), level in stock.items():
        totals[sku] += max(level.available, 0)
    return totals


async def _check_stock(ctx: Niaga, cart: Cart, sku: str, quantity: int) -> None:
    available = (await market_availability(ctx, cart.market, [sku]))[sku]
    if quantity > available:
        raise OutOfStock(
            f"only {available} of {sku} available in market {cart.market}",
            errors=[{"field": "quantity", "message": f"{sku}: {available} available"}],
            sku=sku, available=available,
        )


async def add_line(ctx: Niaga, cart_id: str, sku: str, quantity: int,
                   channel: str | None = None) -> Cart:
    check_quantity(quantity)
    products = await ctx.store.get_products([sku])
    product = products.get(sku)
    if product is None:
        raise ValidationError.field("sku", f"no product {sku!r}")

    async def change(cart: Cart) -> None:
        market = ctx.market(cart.market)
        if unit_price(product, market, ctx.plugins_for(market.code),
                      rates=await ctx.fx_rates()) is None:
            raise ValidationError.field("sku", f"{sku} is not sold in market {market.code}")
        line = cart.line_for_sku(sku)
        new_quantity = quantity + (line.quantity if line else 0)
        check_quantity(new_quantity)
        await _check_stock(ctx, cart, sku, new_quantity)
        if line is not None:
            line.quantity = new_quantity
            return
        if len(cart.lines) >= MAX_LINES:
            raise ValidationError.field("sku", f"a cart holds at most {MAX_LINES} lines")
        zero = Money.zero(cart.currency)
        cart.lines.append(Line(id=new_id(), sku=sku, name=sku, quantity=quantity,
                               unit_price=zero, subtotal=zero, discount=zero, tax=zero,
                               total=zero))
        if cart.delivery is not None and cart.delivery.kind == "pickup":
            cart.delivery = None  # the store may not have the new line; choose again
            cart.warn("delivery_cleared", "choose the pickup store again for the new line")

    return await mutate(ctx, cart_id, change, channel)


async def set_quantity(ctx: Niaga, cart_id: str, line_id: str, quantity: int,
                       channel: str | None = None) -> Cart:
    check_quantity(quantity, allow_zero=True)

    async def change(cart: Cart) -> None:
        line = cart.line(line_id)
        if quantity == 0:
            cart.lines.remove(line)
            return
        if quantity > line.quantity:
            await _check_stock(ctx, cart, line.sku, quantity)
        line.quantity = quantity

    return await mutate(ctx, cart_id, change, channel)


async def remove_line(ctx: Niaga, cart_id: str, line_id: str,
                      channel: str | None = None) -> Cart:
    async def change(cart: Cart) -> None:
        cart.lines.remove(cart.line(line_id))

    return await mutate(ctx, cart_id, change, channel)


async def set_address(ctx: Niaga, cart_id: str, address: Address,
                      channel: str | None = None) -> Cart:
    async def change(cart: Cart) -> None:
        market = ctx.market(cart.market)
        if address.country not in market.countries:
            raise ValidationError.field(
                "country", f"market {market.code} ships to {', '.join(market.countries)}")
        cart.address = address
        if cart.delivery is not None and cart.delivery.kind == "ship":
            cart.delivery = None  # prices and zones depend on the address

    return await mutate(ctx, cart_id, change, channel)


async def delivery_options_for(ctx: Niaga, cart: Cart, stock: StockMap | None = None
                               ) -> list[DeliveryOption]:
    """What carriers offer for the cart now; pass ``stock`` when it was just read."""
    market = ctx.market(cart.market)
    locations = await ctx.locations(market.code)
    if stock is None:
        stock = await ctx.store.get_stock([line.sku for line in cart.lines],
                                          [loc.id for loc in locations], fresh=False)
    context = DeliveryContext(cart=cart, locations=locations, stock=stock)
    plugins = ctx.plugins_for(market.code)
    if plugins.blocking:  # a carrier's rate API: keep the event loop free
        options = await ctx.offload(_options, plugins, context, market, market=market.code,
                                    plugin=plugins.blocking)
    else:
        options = _options(plugins, context, market)
    return [o for o in options if o.price.currency == cart.currency]


def _options(plugins: Any, context: DeliveryContext, market: Any) -> list[DeliveryOption]:
    return plugins.collect("niaga_delivery_options", context=context, market=market)


async def delivery_options(ctx: Niaga, cart_id: str) -> list[DeliveryOption]:
    cart = await view_cart(ctx, cart_id)
    return await delivery_options_for(ctx, cart)


async def set_delivery(ctx: Niaga, cart_id: str, option_id: str,
                       channel: str | None = None) -> Cart:
    async def change(cart: Cart) -> None:
        if not cart.lines:
            raise ValidationError.field("option_id", "add lines before choosing delivery")
        options = {o.id: o for o in await delivery_options_for(ctx, cart)}
        option = options.get(option_id)
        if option is None:
            raise ValidationError.field(
                "option_id", f"{option_id!r} is not offered for this cart "
                             f"(offered: {', '.join(options) or 'none'})")
        cart.delivery = as_delivery(option)

    return await mutate(ctx, cart_id, change, channel, requote=False)


def methods_for(ctx: Niaga, cart: Cart) -> list[PaymentMethod]:
    market = ctx.market(cart.market)
    return ctx.plugins_for(market.code).collect("niaga_payment_methods", cart=cart, market=market)


async def payment_methods(ctx: Niaga, cart_id: str) -> list[PaymentMethod]:
    return methods_for(ctx, await view_cart(ctx, cart_id))


def as_delivery(option: DeliveryOption) -> Delivery:
    return Delivery(option_id=option.id, kind=option.kind, carrier=option.carrier,
                    label=option.label, price=option.price, location_id=option.location_id)


async def requote_delivery(ctx: Niaga, cart: Cart, stock: StockMap | None = None) -> bool:
    """Bring the chosen delivery in line with what is offered now (price, label), or drop it
    when it is no longer offered. True when the delivery changed (the cart needs re-pricing)."""
    if cart.delivery is None:
        return False
    options = await delivery_options_for(ctx, cart, stock)
    current = next((o for o in options if o.id == cart.delivery.option_id), None)
    fresh = as_delivery(current) if current is not None else None
    if fresh == cart.delivery:
        return False
    if fresh is None:
        cart.warn("delivery_cleared", f"{cart.delivery.label} is no longer offered for "
                                      "this cart; choose delivery again")
    cart.delivery = fresh
    return True


async def use_loyalty(ctx: Niaga, cart_id: str, customer: Customer, points: int,
                      channel: str | None = None) -> Cart:
    if points < 0:
        raise ValidationError.field("points", "must not be negative")

    async def change(cart: Cart) -> None:
        if cart.customer_id != customer.id:
            from kernel.errors import Forbidden

            raise Forbidden("this cart belongs to another customer (or to a guest)")
        if points == 0:
            cart.loyalty = None
            return
        cart.loyalty = None
        await reprice(ctx, cart)  # quoted on the cart as it prices without points
        cart.loyalty = await loyalty.quote(ctx, cart, customer.id, points)

    return await mutate(ctx, cart_id, change, channel, points_quoted=True)


async def attach_customer(ctx: Niaga, cart_id: str, customer: Customer) -> Cart:
    async def change(cart: Cart) -> None:
        if cart.customer_id not in (None, customer.id):
            raise Forbidden("this cart belongs to another customer")
        cart.customer_id = customer.id

    return await mutate(ctx, cart_id, change)


async def merge_into_customer_cart(ctx: Niaga, guest_cart_id: str, customer: Customer) -> Cart:
    """Guest cart → the customer's active cart in that market, by the market's
    ``cart_merge`` policy (kernel.markets.CartMerge); quantities are capped by stock.
    Without an active cart the guest cart becomes it. A replay returns the merged cart."""
    guest = await load_cart(ctx, guest_cart_id)
    if guest.customer_id not in (None, customer.id):
        raise Forbidden("that cart belongs to another customer")
    if guest.status == "merged":  # a replay, or a merge a crash cut short: finish it
        return await _finish_merge(ctx, guest)
    guest.ensure_open()
    target = await ctx.store.find_open_cart(customer.id, guest.market)
    if target is None or target.id == guest.id:
        return await attach_customer(ctx, guest.id, customer)
    return await _merge(ctx, guest.id, target)


async def _merge(ctx: Niaga, source_id: str, target: Cart, channel: str | None = None) -> Cart:
    """Close ``source`` as merged into ``target`` (first, so a line added to it meanwhile is a
    409 rather than lost), then move its lines by the target market's policy."""
    for attempt in range(RETRIES):
        source = await load_cart(ctx, source_id)
        source.ensure_open()
        version = source.version
        source.status, source.merged_into = "merged", target.id
        source.customer_id = target.customer_id  # whose cart took it: replays check this
        source.warnings = []
        source.version = version + 1
        source.touch(channel, ctx.clock())
        try:
            await ctx.store.save_cart(source, version)
        except VersionConflict:
            if attempt == RETRIES - 1:
                raise
            continue
        return await _finish_merge(ctx, source, channel)
    raise AssertionError("unreachable")  # pragma: no cover


async def _finish_merge(ctx: Niaga, source: Cart, channel: str | None = None) -> Cart:
    """Bring a merged cart's lines into the cart it was merged into, once (``merged_from``);
    if that cart closed before taking them, the source opens again with its lines."""
    assert source.merged_into is not None
    target = await load_cart(ctx, source.merged_into)
    done = source.id in target.merged_from
    if target.status != "open":
        if not done:
            await _reopen(ctx, source)
        raise Conflict(f"cart {target.id} is {target.status}; "
                       + ("start a new cart" if done else f"cart {source.id} is open again"))
    policy = ctx.market(target.market).cart_merge
    if done or policy == "keep-customer":  # keep-customer: the source's lines are dropped
        return await _priced_now(ctx, target)

    async def change(cart: Cart) -> None:
        if source.id in cart.merged_from:  # a concurrent replay got here first
            return
        cart.merged_from.append(source.id)
        if policy == "replace":
            cart.lines = []
        market = ctx.market(cart.market)
        sold = await _sold_in(ctx, market, [line.sku for line in source.lines])
        available = await market_availability(ctx, market.code, sorted(sold))
        for gline in source.lines:
            if gline.sku not in sold:
                cart.warn("not_sold", f"{gline.sku} is not sold in market {market.code}; "
                                      "not merged", gline.sku)
                continue
            line = cart.line_for_sku(gline.sku)
            have = line.quantity if line else 0
            wanted = min(have + gline.quantity, available.get(gline.sku, 0))
            if wanted < have + gline.quantity:
                _warn_short(cart, gline.sku, have + gline.quantity, max(wanted, have))
            if line is not None:
                line.quantity = max(wanted, have)
            elif wanted > 0 and len(cart.lines) < MAX_LINES:
                cart.lines.append(Line(**{**_line_fields(gline), "id": new_id(),
                                          "quantity": wanted}))

    return await mutate(ctx, target.id, change, channel)


async def _reopen(ctx: Niaga, source: Cart) -> None:
    async def undo() -> None:
        cart = await load_cart(ctx, source.id)
        if cart.status != "merged" or cart.merged_into != source.merged_into:
            return
        version = cart.version
        cart.status, cart.merged_into, cart.version = "open", None, version + 1
        cart.touch(None, ctx.clock())
        await ctx.store.save_cart(cart, version)

    with contextlib.suppress(VersionConflict):  # someone else reopened it
        await undo()


def _warn_short(cart: Cart, sku: str, wanted: int, kept: int) -> None:
    if kept <= 0:
        cart.warn("out_of_stock", f"{sku} is out of stock in market {cart.market}; removed", sku)
    else:
        cart.warn("quantity_reduced", f"only {kept} of the {wanted} {sku} wanted are available "
                                      f"in market {cart.market}", sku)


async def move_market(ctx: Niaga, cart_id: str, market_code: str,
                      channel: str | None = None) -> Cart:
    """Move an open cart to another market: lines re-priced there (those not sold there
    dropped, quantities capped by its stock), re-taxed; delivery and points cleared, and the
    address if the market does not ship to its country. A customer's cart that meets the
    customer's open cart in that market is merged into it by that market's policy."""
    market = ctx.market(market_code)
    check_channel(market, channel)
    cart = await load_cart(ctx, cart_id)
    if cart.status == "merged" and cart.merged_into:  # a replayed move that merged
        target = await load_cart(ctx, cart.merged_into)
        if target.market == market.code:
            return await _finish_merge(ctx, cart, channel)
    cart.ensure_open()
    if cart.market == market.code:  # nothing to move (a replayed PUT)
        return await _priced_now(ctx, cart)
    if cart.customer_id is not None:
        target = await ctx.store.find_open_cart(cart.customer_id, market.code)
        if target is not None and target.id != cart.id:
            return await _merge(ctx, cart.id, target, channel)

    async def change(cart: Cart) -> None:
        if cart.market != market.code:  # a concurrent move may have done it
            await _move(ctx, cart, market)

    return await mutate(ctx, cart_id, change, channel, channel_market=market.code)


async def _move(ctx: Niaga, cart: Cart, market: Market) -> None:
    sold = await _sold_in(ctx, market, [line.sku for line in cart.lines])
    available = await market_availability(ctx, market.code, sorted(sold)) if sold else {}
    cart.market, cart.currency = market.code, market.currency
    cart.prices_include_tax = market.prices_include_tax
    if cart.delivery is not None:
        cart.delivery = None
        cart.warn("delivery_cleared", f"choose delivery again in market {market.code}")
    if cart.loyalty is not None:
        cart.loyalty = None
        cart.warn("loyalty_cleared", "apply points again in the new market")
    if cart.address is not None and cart.address.country not in market.countries:
        cart.address = None
        cart.warn("address_cleared", f"market {market.code} ships to "
                                     f"{', '.join(market.countries)}; enter an address there")
    lines = []
    for line in cart.lines:  # lines not sold there stay for pricing to drop (and warn)
        if line.sku in sold:
            can = available.get(line.sku, 0)
            if line.quantity > can:
                _warn_short(cart, line.sku, line.quantity, can)
                if can <= 0:
                    continue
                line.quantity = can
            available[line.sku] = can - line.quantity
        lines.append(line)
    cart.lines = lines


async def _sold_in(ctx: Niaga, market: Market, skus: list[str]) -> set[str]:
    """The SKUs with a price in ``market`` (its own or a converted one)."""
    products = await ctx.store.get_products(set(skus))
    plugins, rates = ctx.plugins_for(market.code), await ctx.fx_rates()
    return {sku for sku, product in products.items()
            if unit_price(product, market, plugins, rates=rates) is not None}


def _line_fields(line: Line) -> dict:
    return {f: getattr(line, f) for f in line.__struct_fields__}
