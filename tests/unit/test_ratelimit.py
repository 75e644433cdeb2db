"""The checkout limiter on its own: a sliding window per cart, bounded memory, env config."""

from __future__ import annotations

import pytest

from kernel.api.ratelimit import CheckoutLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_counts_a_sliding_window_and_forgets_old_carts():
    clock = FakeClock()
    limiter = CheckoutLimiter(2, 10, clock=clock, max_carts=3)
    assert limiter.try_acquire("a") is None and limiter.try_acquire("a") is None
    assert limiter.try_acquire("a") == 10  # refused attempts are not counted
    clock.now += 4
    assert limiter.try_acquire("a") == 6
    clock.now += 6
    assert limiter.try_acquire("a") is None
    for key in ("b", "c", "d"):
        assert limiter.try_acquire(key) is None
    assert "a" not in limiter._hits and len(limiter._hits) == 3  # least recently tried


@pytest.mark.parametrize(("value", "expected"), [("", 10), ("3", 3), ("0", None)])
def test_the_limit_comes_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("NIAGA_CHECKOUT_ATTEMPTS_PER_MINUTE", value)
    limiter = CheckoutLimiter.from_env()
    assert (limiter.attempts if limiter else None) == expected


@pytest.mark.parametrize("value", ["ten", "-1"])
def test_a_bad_limit_fails_at_start_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("NIAGA_CHECKOUT_ATTEMPTS_PER_MINUTE", value)
    with pytest.raises(ValueError, match="NIAGA_CHECKOUT_ATTEMPTS_PER_MINUTE"):
        CheckoutLimiter.from_env()
