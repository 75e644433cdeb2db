"""Checkout attempts per cart: at most N in a sliding window, counted in this process.

Card testing runs many payment attempts against one cart; each attempt is a gateway call.
The limiter sits in the checkout route and keeps its counts in memory, so a checkout on the
SQL path costs no extra store round trip. What that means per shape:

- one process (``niaga serve``): the limit is exact;
- several workers: each counts on its own, so a cart gets at most ``workers × attempts``
  (requests are spread over workers, so in practice close to the limit);
- Lambda: per warm container, and a new container starts at zero: a soft limit. A hard
  limit there belongs in front of the API (API Gateway throttling, a WAF rate rule).

Only open carts are refused: a replay of a placed order (its cart is checked out) always
gets its order back, whatever the count.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable

from kernel.errors import NiagaError
from kernel.runtime import Niaga

ENV = "NIAGA_CHECKOUT_ATTEMPTS_PER_MINUTE"
DEFAULT_ATTEMPTS = 10
MAX_CARTS = 100_000  # memory bound: the least recently tried carts are forgotten first


class RateLimited(NiagaError):
    status, title, code = 429, "Too many checkout attempts", "rate_limited"

    def __init__(self, detail: str, *, retry_after: int):
        super().__init__(detail, errors=[{"field": "cart_id", "message": detail}],
                         retry_after=retry_after)
        self.retry_after = retry_after  # seconds, sent as the Retry-After header


class CheckoutLimiter:
    def __init__(self, attempts: int, window_s: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic, max_carts: int = MAX_CARTS):
        if attempts < 1 or window_s <= 0:
            raise ValueError("attempts must be ≥ 1 and window_s > 0")
        self.attempts, self.window_s, self.clock, self.max_carts = (
            attempts, window_s, clock, max_carts)
        self._hits: dict[str, deque[float]] = {}

    @classmethod
    def from_env(cls) -> CheckoutLimiter | None:
        """``NIAGA_CHECKOUT_ATTEMPTS_PER_MINUTE`` (default 10); 0 turns the limit off."""
        raw = os.environ.get(ENV, "").strip()
        try:
            attempts = int(raw) if raw else DEFAULT_ATTEMPTS
        except ValueError as exc:
            raise ValueError(f"{ENV}: not a whole number: {raw!r}") from exc
        if attempts < 0:
            raise ValueError(f"{ENV}: must not be negative")
        return cls(attempts) if attempts else None

    def try_acquire(self, key: str) -> float | None:
        """Count an attempt and return None, or the seconds until one is allowed again
        (a refused attempt is not counted)."""
        now = self.clock()
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        self._hits[key] = hits  # re-inserted: dict order is least recently tried first
        if len(hits) >= self.attempts:
            return hits[0] + self.window_s - now
        hits.append(now)
        if len(self._hits) > self.max_carts:
            del self._hits[next(iter(self._hits))]
        return None


async def admit_checkout(limiter: CheckoutLimiter | None, ctx: Niaga, cart_id: str) -> None:
    """Raise RateLimited when the cart is over its limit and still open. The cart is read
    only then, so an admitted checkout costs no round trip here."""
    if limiter is None:
        return
    wait = limiter.try_acquire(cart_id)
    if wait is None:
        return
    cart = await ctx.store.get_cart(cart_id)
    if cart is None or cart.status != "open":
        return  # a replay of the placed order (or a 404/409 the checkout explains)
    seconds = max(1, math.ceil(wait))
    raise RateLimited(f"at most {limiter.attempts} checkout attempts per cart in "
                      f"{limiter.window_s:g} s; try again in {seconds} s", retry_after=seconds)
