"""Loyalty points: an append-only ledger and one balance per customer.

The kernel owns the ledger and the balance, because points are money-like: never
lost, never spent twice. A loyalty plugin owns the policy (earn rates, tiers,
what a point is worth, how much of an order points may pay); it is asked through
the ``niaga_loyalty_*`` hooks and never touches the ledger itself.

Every change to a balance is a :class:`LedgerEntry` whose ``id`` is its
idempotency key (``earn:<order id>``, ``redeem:<order id>``,
``reverse_earn:<event id>``...): the store applies an id once, so a redelivered
event or a retried write changes nothing the second time. One customer has one
account across channels and markets. Entries hold the customer id only, no
personal data, so they survive the customer's erasure (the books need them).
"""

from __future__ import annotations

from typing import Literal

import msgspec

LedgerKind = Literal["earn", "redeem", "reverse_earn", "refund_redeem", "adjust"]
KINDS: tuple[str, ...] = ("earn", "redeem", "reverse_earn", "refund_redeem", "adjust")


class LedgerEntry(msgspec.Struct, kw_only=True, frozen=True):
    """One movement of a customer's points.

    ``points``: + for earn, refund_redeem and a positive adjust; − for redeem,
    reverse_earn and a negative adjust. ``base_points``: the points before the tier
    multiplier (what tiers count as lifetime spend); 0 for redemptions.
    """

    id: str  # the idempotency key: applied once, whatever happens
    customer_id: str
    points: int
    kind: LedgerKind
    order_id: str | None = None
    market: str | None = None
    at: float = 0.0
    base_points: int = 0
    note: str | None = None


class LoyaltyAccount(msgspec.Struct, kw_only=True, frozen=True):
    """A customer's balance (never below zero) and lifetime base points (for tiers)."""

    customer_id: str
    balance: int = 0
    lifetime_base_points: int = 0
