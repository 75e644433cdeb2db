"""What a risk rule may know about a checkout beyond the cart: the payment side and history.

:func:`niaga_before_place_order` receives a :class:`CheckoutContext` next to the
cart. Hooks are synchronous and do no I/O, so the kernel reads what they need
first: the payment method, the billing country the customer gave, a fingerprint
of the card token (never the token), and, only when some enabled plugin asks
for look-back windows (``niaga_velocity_windows``), how many orders the same
customer, email and card placed in each window: one extra query per checkout.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec

from kernel.errors import ValidationError

# the checkout body keys that name a reusable card or payment instrument, in order:
# a gateway's saved card / payment method id, or the development gateway's token
CARD_KEYS = ("card_token", "payment_method", "token")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class RecentOrders(msgspec.Struct, frozen=True, kw_only=True):
    """Orders placed (any market, any status) in the last ``window_hours`` before this
    checkout by the same customer id, the same email and the same card fingerprint.
    A key the checkout lacks (a guest has no customer id) counts 0."""

    window_hours: float
    customer: int = 0
    email: int = 0
    card: int = 0

    def count(self, key: str) -> int:
        return {"customer": self.customer, "email": self.email, "card": self.card}[key]


class CheckoutContext(msgspec.Struct, frozen=True, kw_only=True):
    """The third argument of ``niaga_before_place_order``."""

    payment_method: str
    billing_country: str | None = None  # ISO 3166-1 alpha-2 from payment.billing_country
    email: str | None = None  # the cart address's email, lower-cased
    card_fingerprint: str | None = None  # sha256 of "method:token"; the token is never kept
    recent: dict[float, RecentOrders] = {}  # window hours -> counts, for the windows asked

    def recent_orders(self, window_hours: float) -> RecentOrders:
        """The counts for a window a plugin asked for with ``niaga_velocity_windows``."""
        try:
            return self.recent[float(window_hours)]
        except KeyError:
            raise KeyError(f"no order counts for a {window_hours} h window: return it from "
                           "the plugin's niaga_velocity_windows") from None


def normalise_email(email: str | None) -> str | None:
    return (email.strip().lower() or None) if email else None


def card_fingerprint(method: str, payment: dict[str, Any]) -> str | None:
    """A stable, irreversible name for the card token in a checkout body (or None): 128 bits
    of SHA-256, ample to tell cards apart and small enough to index cheaply."""
    for key in CARD_KEYS:
        token = payment.get(key)
        if isinstance(token, str) and token:
            return hashlib.sha256(f"{method}:{token}".encode()).hexdigest()[:32]
    return None


def billing_country(payment: dict[str, Any]) -> str | None:
    value = payment.get("billing_country")
    if value is None:
        return None
    if not isinstance(value, str) or not _COUNTRY.match(value):
        raise ValidationError.field("payment.billing_country",
                                    "an ISO 3166-1 alpha-2 code in capitals, e.g. US")
    return value
