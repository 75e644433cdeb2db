"""Pricing a cart: line prices → discounts → delivery → tax → totals.

Pure given its inputs (products, plugins); the caller does the reading.
Every amount that is not a line price becomes an :class:`Adjustment` naming
the plugin behind it, and :func:`kernel.totals.check_totals` has the last word.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from fractions import Fraction

from kernel.cart import Adjustment, Cart, Line
from kernel.catalog import Location, Product
from kernel.errors import GatewayError, NiagaError, ValidationError
from kernel.markets import Market
from kernel.money import Money, allocate, percent, round_fraction
from kernel.plugins import MarketPlugins
from kernel.tax import SHIPPING, TaxLine, TaxRequest, TaxResult, compute_taxes
from kernel.totals import check_totals

log = logging.getLogger("niaga.pricing")


def unit_price(product: Product, market: Market, plugins: MarketPlugins,
               line: Line | None = None,
               rates: dict[str, dict[str, str]] | None = None) -> Money | None:
    """The catalog price in this market, else a converted one (localisation plugins).
    Given a cart ``line``, keeps the conversion's rate snapshot on it (``line.fx``)."""
    from kernel.catalog import ConvertedPrice

    price = product.price_in(market.code)
    fx = None
    if price is None:
        price = plugins.first("niaga_convert_price", product=product, market=market,
                              rates=rates or {})
        if isinstance(price, ConvertedPrice):
            fx, price = price.snapshot(), price.price
    if line is not None:
        line.fx = fx
    if price is not None and price.currency != market.currency:
        raise GatewayError(f"price for {product.sku} is in {price.currency}, not {market.currency}")
    return price


def price_cart(
    cart: Cart,
    market: Market,
    products: dict[str, Product],
    plugins: MarketPlugins,
    pickup_location: Location | None = None,
    rates: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Re-price ``cart`` in place. Returns the SKUs dropped (deleted or no longer sold here)."""
    cur = cart.currency
    zero = Money.zero(cur)
    dropped: list[str] = []
    lines: list[Line] = []
    locale = market.default_locale
    for line in cart.lines:
        product = products.get(line.sku)
        base = unit_price(product, market, plugins, line, rates) if product else None
        if product is None or base is None:
            dropped.append(line.sku)
            continue
        unit = plugins.chain(
            "niaga_line_price", "price", base,
            product=product, quantity=line.quantity, cart=cart, market=market,
        )
        if unit.currency != cur or unit.amount < 0:
            raise GatewayError(f"a line price plugin returned {unit} for {line.sku}")
        line.name = product.name_for(locale, market.locales)
        line.unit_price = unit
        line.subtotal = unit * line.quantity
        line.tax_class = product.tax_class
        line.weight_grams = product.weight_grams
        line.discount = line.tax = zero
        lines.append(line)
    cart.lines = lines
    adjustments: list[Adjustment] = []

    # discounts: line-targeted ones stay on their line, the rest spread by line subtotal
    discounts = list(plugins.collect("niaga_cart_discounts", cart=cart, market=market))
    if cart.loyalty and cart.loyalty.discount.amount:
        discounts.append(Adjustment(source=cart.loyalty.source, kind="discount",
                                    label=f"{cart.loyalty.points} points",
                                    amount=cart.loyalty.discount))
    per_line = {line.id: 0 for line in lines}
    for adj in discounts:
        if adj.kind != "discount" or adj.amount.currency != cur or adj.amount.amount < 0:
            raise GatewayError(f"plugin {adj.source} returned an invalid discount {adj.amount}")
        room = {line.id: line.subtotal.amount - per_line[line.id] for line in lines}
        if adj.line_id is not None:
            if adj.line_id not in room:
                continue
            shares = {adj.line_id: min(adj.amount.amount, room[adj.line_id])}
        else:
            wanted = min(adj.amount.amount, sum(room.values()))
            ids = list(room)
            # proportional shares never exceed room (weights are the room itself)
            shares = dict(zip(ids, allocate(wanted, [room[i] for i in ids]), strict=True))
        applied = sum(shares.values())
        for line_id, share in shares.items():
            per_line[line_id] += share
        if applied:
            adjustments.append(Adjustment(source=adj.source, kind="discount", label=adj.label,
                                          amount=Money(applied, cur), line_id=adj.line_id))
    for line in lines:
        line.discount = Money(per_line[line.id], cur)

    # delivery
    shipping = zero
    if cart.delivery is not None:
        shipping = cart.delivery.price
        adjustments.append(Adjustment(source=cart.delivery.carrier, kind="shipping",
                                      label=cart.delivery.label, amount=shipping))

    # tax
    result = _taxes(cart, market, plugins, lines, shipping, pickup_location)
    cart.tax_estimated = result.estimated
    tax_by_line = {t.line_id: t for t in result.lines}
    grouped: dict[str, int] = defaultdict(int)
    for taxed in result.lines:
        grouped[taxed.label] += taxed.tax.amount
    for line in lines:
        taxed = tax_by_line.get(line.id)
        line.tax = taxed.tax if taxed else zero
        net = line.subtotal.amount - line.discount.amount
        line.total = Money(net if market.prices_include_tax else net + line.tax.amount, cur)
    for label, amount in grouped.items():
        if amount:
            adjustments.append(Adjustment(source=result.source, kind="tax", label=label,
                                          amount=Money(amount, cur)))

    cart.adjustments = adjustments
    cart.subtotal = Money(sum(li.subtotal.amount for li in lines), cur)
    cart.discount_total = Money(sum(li.discount.amount for li in lines), cur)
    cart.shipping_total = shipping
    cart.tax_total = Money(sum(t.tax.amount for t in result.lines), cur)
    total = cart.subtotal - cart.discount_total + cart.shipping_total
    cart.total = total if market.prices_include_tax else total + cart.tax_total
    step = market.policy.cash_rounding
    if step and cart.total.amount % step:
        # the remainder is its own adjustment: never hidden in a line or a tax amount
        rounded = round_fraction(Fraction(cart.total.amount, step),
                                 market.policy.rounding_mode) * step
        remainder = Money(rounded - cart.total.amount, cur)
        cart.adjustments.append(Adjustment(
            source="kernel:cash-rounding", kind="rounding", amount=remainder,
            label=f"Rounded to {Money(step, cur).format_amount()} {cur}"))
        cart.total = Money(rounded, cur)
    check_totals(cart)
    return dropped


def _taxes(cart: Cart, market: Market, plugins: MarketPlugins, lines: list[Line],
           shipping: Money, pickup_location: Location | None) -> TaxResult:
    from kernel.cart import Address

    pickup_address = None
    if pickup_location is not None:
        pickup_address = Address(country=pickup_location.country, region=pickup_location.region,
                                 city=pickup_location.city,
                                 postal_code=pickup_location.postal_code)
    request = TaxRequest(
        market=market.code, currency=cart.currency, policy=market.policy,
        lines=[TaxLine(line_id=li.id, sku=li.sku, tax_class=li.tax_class, quantity=li.quantity,
                       amount=li.subtotal - li.discount) for li in lines],
        shipping=shipping, address=cart.address,
        delivery_kind=cart.delivery.kind if cart.delivery else None,
        pickup_address=pickup_address,
    )
    hook = "niaga_calculate_taxes"
    try:
        result = plugins.first(hook, request=request)
        if result is None:
            raise GatewayError(f"no tax plugin answered for market {market.code}")
        _check_tax_result(result, request)
        return result
    except ValidationError:
        raise  # the customer's input is wrong: no fallback rate fixes that
    except NiagaError as exc:
        failure = exc
    except Exception as exc:  # a plugin's bug is a gateway failure with its name on it
        names = ", ".join(plugins.implementers(hook)) or "-"
        failure = GatewayError(f"tax plugin {names} failed: {exc}")
    if market.on_tax_error == "fallback" and market.fallback_tax_rate:
        log.warning("tax for market %s falls back to %s%%: %s", market.code,
                    market.fallback_tax_rate, failure.detail)
        rate = percent(market.fallback_tax_rate)
        label = f"Fallback tax {market.fallback_tax_rate}%"
        names = ", ".join(plugins.implementers(hook)) or "tax plugin"
        rates = {li.id: (rate, label) for li in lines}
        rates[SHIPPING] = (rate, label)
        fallback = compute_taxes(request, rates, source="kernel:fallback-tax")
        return TaxResult(source="kernel:fallback-tax", lines=[
            t.__class__(line_id=t.line_id, tax=t.tax, rate=t.rate,
                        label=f"{label} ({names} unavailable)") for t in fallback.lines
        ])
    raise failure


def _check_tax_result(result: TaxResult, request: TaxRequest) -> None:
    ids = {t.line_id for t in request.lines} | {SHIPPING}
    for taxed in result.lines:
        if taxed.line_id not in ids or taxed.tax.currency != request.currency:
            raise GatewayError(f"tax plugin {result.source} returned a bad line {taxed.line_id}")
    # never a silent zero: an untaxed line must be answered with an explicit 0
    missing = {t.line_id for t in request.lines} - {t.line_id for t in result.lines}
    if missing:
        raise GatewayError(f"tax plugin {result.source} did not tax line(s) "
                           f"{', '.join(sorted(missing))}")
