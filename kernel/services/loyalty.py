"""Loyalty use cases: quote points on a cart, redeem them with the order, earn and reverse.

The market's loyalty plugin decides the policy (``niaga_loyalty_quote``,
``niaga_loyalty_earn``, ``niaga_loyalty_tier``); the kernel keeps the ledger
(:mod:`kernel.loyalty`) and moves the balance, so points are never lost and
never spent twice:

- **Redeem**: checkout passes :func:`redemption` to ``Store.place_order``, which
  debits the points in the same atomic write that places the order (a balance
  too low places nothing: 409).
- **Earn**: on ``order.paid`` the plugin says how many points the order earns;
  the entry id ``earn:<order id>`` makes a second delivery a no-op.
- **Reverse**: on ``order.cancelled``, ``order.expired`` and an ``order.returned``
  that brings the last unit back, every point the order earned is taken back and
  every point it redeemed is given back. A partial return takes back the earned
  points pro rata to the refund over the goods value (``total - shipping``),
  rounded down, and leaves redeemed points spent until the order is fully
  returned or cancelled. Entry ids derive from the event id, so a redelivered
  event applies once. The order's history gets a ``points_reversed`` entry naming
  the event (points taken back, points given back), also written once.
- **Never negative**: if the customer already spent points the order earned,
  the reversal takes what the balance holds and records the shortfall in the
  entry's note; the order's lifetime base points are reversed in full (tiers
  count goods kept, not goods returned). A later full reversal of the same
  order tries again for what is still missing.

:func:`on_event` runs for every outbox event before the plugins' notify hooks
(locally from :class:`kernel.services.events.Dispatcher`; on AWS the stream
worker calls the same function). It is idempotent, so at-least-once delivery
is exact.
"""

from __future__ import annotations

import logging
from typing import Any

from kernel.cart import Cart, LoyaltyUse
from kernel.errors import Conflict, GatewayError, ValidationError, VersionConflict
from kernel.events import Event
from kernel.loyalty import LedgerEntry
from kernel.money import Money, MoneyError
from kernel.orders import Order
from kernel.runtime import Niaga

log = logging.getLogger("niaga.loyalty")

# each hook is named once in the kernel: here
QUOTE = "niaga_loyalty_quote"
EARN = "niaga_loyalty_earn"
TIER = "niaga_loyalty_tier"
REVERSING = ("order.cancelled", "order.expired", "order.returned")
RETRIES = 3
_ABSENT = object()


async def quote(ctx: Niaga, cart: Cart, customer_id: str, points: int, *,
                at_most_balance: bool = False) -> LoyaltyUse:
    """What ``points`` are worth on ``cart`` (priced without points), as the plugin says.

    ``at_most_balance`` asks for no more than the balance (re-quoting a changed cart)
    instead of letting the plugin refuse. 422 naming ``points`` when the market runs
    no loyalty programme or the plugin refuses.
    """
    market = ctx.market(cart.market)
    balance = (await ctx.store.loyalty_account(customer_id)).balance
    if at_most_balance:
        points = min(points, balance)
        if points <= 0:
            raise ValidationError.field("points", "no points left to use")
    use = ctx.plugins_for(market.code).first(QUOTE, cart=cart, market=market,
                                             customer_id=customer_id, points=points,
                                             balance=balance)
    if use is None:
        raise ValidationError.field("points", f"no loyalty programme in market {market.code}")
    if not (isinstance(use, LoyaltyUse) and 0 < use.points <= min(points, balance)
            and use.discount.currency == cart.currency and use.discount.amount >= 0):
        source = getattr(use, "source", "?")
        raise GatewayError(f"loyalty plugin {source} returned an invalid quote {use!r} "
                           f"for {points} points (balance {balance})")
    return use


def redemption(order: Order) -> list[LedgerEntry]:
    """The ledger entry debiting the points an order uses (none without points)."""
    use = order.loyalty
    if use is None or use.points <= 0:
        return []
    if order.customer_id is None:  # checkout refuses such a cart before this
        raise ValidationError.field("loyalty", "points need a signed-in customer")
    return [LedgerEntry(id=f"redeem:{order.id}", customer_id=order.customer_id,
                        points=-use.points, kind="redeem", order_id=order.id,
                        market=order.market, at=order.created_at,
                        note=f"{use.discount.format_amount()} {use.discount.currency} off "
                             f"order {order.number}")]


async def on_event(ctx: Niaga, event: Event) -> list[LedgerEntry]:
    """Apply what ``event`` means for the ledger; returns the entries applied now."""
    if event.type == "order.paid":
        return await _earn(ctx, event)
    if event.type in REVERSING:
        return await _reverse(ctx, event)
    return []


async def _order_of(ctx: Niaga, event: Event) -> Order | None:
    # events say whose order it is; a guest order needs no read at all
    if event.data.get("customer_id", _ABSENT) is None:
        return None
    order = await ctx.store.get_order(event.subject)
    return order if order is not None and order.customer_id else None


async def _earn(ctx: Niaga, event: Event) -> list[LedgerEntry]:
    if event.market not in ctx.markets or not ctx.plugins_for(event.market).implementers(EARN):
        return []
    order = await _order_of(ctx, event)
    if order is None or order.customer_id is None or order.status in ("cancelled", "returned"):
        return []  # a late delivery for an order already undone earns nothing
    market = ctx.market(order.market)
    account = await ctx.store.loyalty_account(order.customer_id)
    try:
        earned = ctx.plugins_for(market.code).first(
            EARN, order=order, market=market,
            lifetime_base_points=account.lifetime_base_points)
    except Exception:  # a plugin's bug must not block the outbox; a person can adjust
        log.exception("loyalty plugin failed to earn for order %s (event %s); no points",
                      order.id, event.id)
        return []
    if earned is None:
        return []
    if not (isinstance(earned, tuple) and len(earned) == 2
            and all(isinstance(n, int) and n >= 0 for n in earned)):
        log.error("loyalty plugin answered %r for order %s; no points", earned, order.id)
        return []
    points, base = earned
    if not points and not base:
        return []
    return await ctx.store.loyalty_apply([LedgerEntry(
        id=f"earn:{order.id}", customer_id=order.customer_id, points=points, kind="earn",
        order_id=order.id, market=order.market, at=ctx.clock(), base_points=base,
        note=f"order {order.number}")])


async def _reverse(ctx: Niaga, event: Event) -> list[LedgerEntry]:
    order = await _order_of(ctx, event)
    if order is None or order.customer_id is None:
        return []
    full = event.type != "order.returned" or order.status == "returned"
    refund = 0
    if not full:
        try:
            refund = Money.parse(str(event.data.get("refund", "0")), order.currency).amount
        except MoneyError:
            log.error("event %s carries no readable refund; nothing reversed", event.id)
            return []
    for attempt in range(RETRIES):
        mine = [e for e in await ctx.store.loyalty_ledger(order.customer_id)
                if e.order_id == order.id]
        if not mine:
            return []
        done = [e for e in mine if e.id in (f"reverse_earn:{event.id}",
                                            f"refund_redeem:{event.id}")]
        if done:  # a redelivery: applied before, perhaps not yet noted on the order
            await _note_on_order(ctx, order, event, done)
            return []
        balance = (await ctx.store.loyalty_account(order.customer_id)).balance
        entries = reversal(order, event.id, mine, balance, full=full, refund=refund,
                           now=ctx.clock())
        if not entries:
            return []
        try:
            applied = await ctx.store.loyalty_apply(entries)
        except Conflict:  # points spent meanwhile: read again and take what is there
            if attempt == RETRIES - 1:
                raise
            continue
        await _note_on_order(ctx, order, event, applied)
        return applied
    return []  # pragma: no cover


async def _note_on_order(ctx: Niaga, order: Order, event: Event,
                         entries: list[LedgerEntry]) -> None:
    """Record the reversal in the order's history too, once per event (the entry names the
    event). Only the history changes, so an order operation racing this write retries on
    the fresh order instead of failing (see kernel.services.returns.execute)."""
    if not entries:
        return
    taken = -sum(e.points for e in entries if e.kind == "reverse_earn")
    given = sum(e.points for e in entries if e.kind == "refund_redeem")
    notes = [e.note for e in entries if e.note]
    for _ in range(RETRIES):
        if any(h.event == "points_reversed" and h.detail.get("event_id") == event.id
               for h in order.history):
            return
        version = order.version
        order.record(ctx.clock(), "points_reversed", event_id=event.id, cause=event.type,
                     points_taken=taken,
                     points_given_back=given, entries=[e.id for e in entries], note=notes)
        order.version += 1
        try:
            await ctx.store.save_order(order, version, [])
            return
        except VersionConflict:
            fresh = await ctx.store.get_order(order.id)
            if fresh is None:
                return
            order = fresh
    log.warning("order %s kept changing; its points reversal (event %s) is in the ledger "
                "but not noted on the order", order.id, event.id)


def reversal(order: Order, event_id: str, ledger: list[LedgerEntry], balance: int, *,
             full: bool, refund: int = 0, now: float = 0.0) -> list[LedgerEntry]:
    """The entries undoing ``order``'s points (see the module docstring for the policy).

    ``ledger`` is the order's entries so far, ``balance`` the customer's, ``refund``
    the minor units a partial return gave back.
    """
    customer_id = order.customer_id
    assert customer_id is not None
    earning = [e for e in ledger if e.kind in ("earn", "reverse_earn")]
    earned = sum(e.points for e in earning)
    earned_base = sum(e.base_points for e in earning)
    redeemed = -sum(e.points for e in ledger if e.kind in ("redeem", "refund_redeem"))
    common: dict[str, Any] = {"customer_id": customer_id, "order_id": order.id,
                              "market": order.market, "at": now}
    entries: list[LedgerEntry] = []
    credit = 0
    if full and redeemed > 0:
        credit = redeemed
        entries.append(LedgerEntry(id=f"refund_redeem:{event_id}", points=redeemed,
                                   kind="refund_redeem",
                                   note=f"order {order.number} undone", **common))
    if full:
        want, want_base = earned, earned_base
    else:
        goods = order.total.amount - order.shipping_total.amount
        gross = sum(e.points for e in earning if e.kind == "earn")
        gross_base = sum(e.base_points for e in earning if e.kind == "earn")
        part = min(max(refund, 0), goods)
        if goods <= 0 or part <= 0:
            return entries
        want = min(earned, gross * part // goods)
        want_base = min(earned_base, gross_base * part // goods)
    want, want_base = max(want, 0), max(want_base, 0)
    take = min(want, balance + credit)
    if want or want_base:
        note = f"order {order.number}: {'cancelled' if full else 'part returned'}"
        if take < want:
            note += f"; {want - take} of {want} points were already spent, not taken back"
        entries.append(LedgerEntry(id=f"reverse_earn:{event_id}", points=-take,
                                   kind="reverse_earn", base_points=-want_base, note=note,
                                   **common))
    return entries


async def account_summary(ctx: Niaga, customer_id: str,
                          market_code: str | None = None) -> dict[str, Any]:
    """Balance, lifetime base points and tier for ``GET /me``.

    Points are one balance across markets, but tiers are a market's policy: the
    tier comes from ``market_code`` if given, else from the first market (in the
    markets file's order) that runs a loyalty plugin; None when none does.
    """
    account = await ctx.store.loyalty_account(customer_id)
    if market_code is not None:
        code: str | None = ctx.market(market_code).code
    else:
        code = next((c for c in ctx.markets if ctx.plugins_for(c).implementers(TIER)), None)
    tier = None
    if code is not None:
        tier = ctx.plugins_for(code).first(TIER, lifetime_base_points=account.lifetime_base_points,
                                           market=ctx.market(code))
    return {"balance": account.balance, "lifetime_points": account.lifetime_base_points,
            "tier": tier, "market": code}
