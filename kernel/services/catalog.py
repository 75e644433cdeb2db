"""Catalog and inventory administration, and the availability view."""

from __future__ import annotations

from typing import Any

from kernel.catalog import Product
from kernel.errors import NotFound, ValidationError
from kernel.inventory import MAX_ON_HAND, StockLevel, is_low
from kernel.money import MAX_AMOUNT
from kernel.runtime import Niaga

REASONS = ("pos_sale", "marketplace_sale", "receipt", "write_off", "count", "return",
           "transfer", "correction")


async def put_product(ctx: Niaga, product: Product) -> Product:
    for market_code, price in product.prices.items():
        market = ctx.market(market_code, field=f"prices.{market_code}")
        if price.currency != market.currency:
            raise ValidationError.field(f"prices.{market_code}.currency",
                                        f"market {market_code} sells in {market.currency}")
        if price.amount < 0:
            raise ValidationError.field(f"prices.{market_code}.amount", "must not be negative")
        if price.amount > MAX_AMOUNT:  # line and order totals must fit a BIGINT
            raise ValidationError.field(f"prices.{market_code}.amount", "too large")
    await ctx.store.put_product(product)
    return product


async def delete_product(ctx: Niaga, sku: str) -> None:
    if not await ctx.store.delete_product(sku):
        raise NotFound(f"no product {sku}")


async def get_product(ctx: Niaga, sku: str) -> Product:
    product = (await ctx.store.get_products([sku])).get(sku)
    if product is None:
        raise NotFound(f"no product {sku}")
    return product


async def _location(ctx: Niaga, location_id: str) -> None:
    if not any(loc.id == location_id for loc in await ctx.locations()):
        raise NotFound(f"no location {location_id}")


async def set_stock(ctx: Niaga, sku: str, location_id: str, on_hand: int | None,
                    low_threshold: int | None = None) -> StockLevel:
    """A count (on_hand) and/or the low-stock threshold of one (SKU, location)."""
    if on_hand is None and low_threshold is None:
        raise ValidationError.field("on_hand", "give on_hand, low_threshold or both")
    for name, value in (("on_hand", on_hand), ("low_threshold", low_threshold)):
        if value is not None and value < 0:
            raise ValidationError.field(name, "must not be negative")
        if value is not None and value > MAX_ON_HAND:
            raise ValidationError.field(name, f"must be at most {MAX_ON_HAND}")
    await get_product(ctx, sku)
    await _location(ctx, location_id)
    level = await ctx.store.set_stock(sku, location_id, on_hand,
                                      "count" if on_hand is not None else "threshold",
                                      ctx.clock(), low_threshold=low_threshold)
    if is_low(level):
        ctx.dispatcher.kick()  # it may have written stock.low
    return level


async def set_on_hand(ctx: Niaga, sku: str, location_id: str, on_hand: int) -> StockLevel:
    return await set_stock(ctx, sku, location_id, on_hand)


async def adjust(ctx: Niaga, sku: str, location_id: str, delta: int, reason: str) -> StockLevel:
    if reason not in REASONS:
        raise ValidationError.field("reason", f"one of {', '.join(REASONS)}")
    if delta == 0:
        raise ValidationError.field("delta", "must not be zero")
    await _location(ctx, location_id)
    current = (await ctx.store.get_stock([sku], [location_id])).get((sku, location_id))
    if current is not None and current.on_hand + delta > MAX_ON_HAND:  # INTEGER column's guard
        raise ValidationError.field("delta", f"would put {current.on_hand + delta} on hand; "
                                             f"at most {MAX_ON_HAND}")
    level = await ctx.store.adjust_stock(sku, location_id, delta, reason, ctx.clock())
    if is_low(level):
        ctx.dispatcher.kick()  # it may have written stock.low
    return level


async def stock_of(ctx: Niaga, sku: str, market_code: str | None = None) -> list[StockLevel]:
    """Every location's level of ``sku`` (admin view: reserved and threshold too), or the
    levels at the locations serving ``market_code``."""
    await get_product(ctx, sku)
    where = None
    if market_code is not None:
        where = [loc.id for loc in await ctx.locations(ctx.market(market_code).code)]
        if not where:
            return []
    stock = await ctx.store.get_stock([sku], where)
    return [stock[key] for key in sorted(stock)]


async def availability(ctx: Niaga, sku: str, market_code: str) -> dict[str, Any]:
    market = ctx.market(market_code)
    await get_product(ctx, sku)
    locations = await ctx.locations(market.code)
    stock = await ctx.store.get_stock([sku], [loc.id for loc in locations], fresh=False)
    rows = []
    for loc in locations:
        level = stock.get((sku, loc.id))
        rows.append({"id": loc.id, "name": loc.name, "kind": loc.kind,
                     "available": max(level.available, 0) if level else 0})
    return {"sku": sku, "market": market.code,
            "available": sum(r["available"] for r in rows), "locations": rows}


async def set_fx_rates(ctx: Niaga, base: str, rates: dict[str, str]) -> None:
    """Store exchange rates from ``base``; every field named on a problem."""
    from decimal import Decimal, InvalidOperation

    from kernel.money import MoneyError, currency_digits

    for field, code in [("base", base), *((f"rates.{c}", c) for c in rates)]:
        try:
            currency_digits(code)
        except MoneyError as exc:
            raise ValidationError.field(field, str(exc)) from exc
    for code, text in rates.items():
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or value <= 0:
            raise ValidationError.field(f"rates.{code}", f"{text!r} is not a positive rate")
        if code == base:
            raise ValidationError.field(f"rates.{code}", "a currency has no rate to itself")
    await ctx.store.put_fx_rates(base, rates, ctx.clock())
    ctx.forget_fx_rates()

