"""Storage contract: the loyalty ledger and balance (exact, idempotent, never negative)."""

from __future__ import annotations

import asyncio

import pytest

from kernel.errors import Conflict
from kernel.ids import new_id
from kernel.loyalty import LedgerEntry, LoyaltyAccount


def entry(customer_id: str, points: int, *, kind: str = "adjust", id: str | None = None,
          at: float = 1_700_000_000.0, base: int = 0, order_id: str | None = None,
          note: str | None = None) -> LedgerEntry:
    return LedgerEntry(id=id or f"{kind}:{new_id()}", customer_id=customer_id, points=points,
                       kind=kind, order_id=order_id, market="DE", at=at, base_points=base,
                       note=note)


async def test_an_unknown_customer_has_a_zero_account_and_no_ledger(store):
    assert await store.loyalty_account("nobody") == LoyaltyAccount(customer_id="nobody")
    assert await store.loyalty_ledger("nobody") == []
    assert await store.loyalty_apply([]) == []


async def test_apply_moves_balance_and_lifetime_and_keeps_every_field(store, build):
    cid = new_id()
    earn = entry(cid, 150, kind="earn", id="earn:o-1", base=100, order_id="o-1",
                 note="Bestellung – ok ✓")
    assert await store.loyalty_apply([earn]) == [earn]
    assert await store.loyalty_account(cid) == LoyaltyAccount(
        customer_id=cid, balance=150, lifetime_base_points=100)
    redeem = entry(cid, -40, kind="redeem", id="redeem:o-2", at=build.T0 + 1_000_000,
                   order_id="o-2")
    reverse = entry(cid, -60, kind="reverse_earn", id="reverse_earn:e-1",
                    at=build.T0 + 2_000_000, base=-40, order_id="o-1")
    assert await store.loyalty_apply([redeem, reverse]) == [redeem, reverse]
    assert await store.loyalty_account(cid) == LoyaltyAccount(
        customer_id=cid, balance=50, lifetime_base_points=60)
    assert await store.loyalty_ledger(cid) == [earn, redeem, reverse]


async def test_a_duplicate_id_is_skipped_and_only_new_entries_are_returned(store):
    cid = new_id()
    first = entry(cid, 100, id="earn:o-1", kind="earn", base=100)
    assert await store.loyalty_apply([first]) == [first]
    # delivered again (at least once), even with other numbers: changes nothing
    again = entry(cid, 999, id="earn:o-1", kind="earn", base=999)
    assert await store.loyalty_apply([again]) == []
    fresh = entry(cid, 5, at=1_700_000_001.0)
    assert await store.loyalty_apply([again, fresh, fresh]) == [fresh]
    assert await store.loyalty_account(cid) == LoyaltyAccount(
        customer_id=cid, balance=105, lifetime_base_points=100)
    assert [e.id for e in await store.loyalty_ledger(cid)] == ["earn:o-1", fresh.id]


async def test_a_balance_below_zero_is_refused_and_nothing_is_applied(store):
    cid, other = new_id(), new_id()
    await store.loyalty_apply([entry(cid, 100), entry(other, 10)])
    before = (await store.loyalty_ledger(cid), await store.loyalty_ledger(other))
    credit, debit = entry(cid, 20), entry(cid, -130, kind="redeem")
    with pytest.raises(Conflict) as refused:
        await store.loyalty_apply([entry(other, 7), credit, debit])
    assert "100" in refused.value.detail  # names the balance
    assert refused.value.errors and refused.value.errors[0]["field"] == "points"
    assert await store.loyalty_account(cid) == LoyaltyAccount(customer_id=cid, balance=100)
    assert await store.loyalty_account(other) == LoyaltyAccount(customer_id=other, balance=10)
    assert (await store.loyalty_ledger(cid), await store.loyalty_ledger(other)) == before
    # a credit and a debit in one call count together: 100 + 20 - 120 = 0 is fine
    assert len(await store.loyalty_apply([credit, entry(cid, -120, kind="redeem")])) == 2
    assert (await store.loyalty_account(cid)).balance == 0
    # a customer with no account cannot go below zero either
    with pytest.raises(Conflict):
        await store.loyalty_apply([entry(new_id(), -1, kind="redeem")])


async def test_the_ledger_is_oldest_first_and_per_customer(store, build):
    cid, other = new_id(), new_id()
    t = build.T0
    late, early, middle = entry(cid, 3, at=t + 30), entry(cid, 1, at=t + 10), \
        entry(cid, 2, at=t + 20)
    await store.loyalty_apply([late])
    await store.loyalty_apply([early, entry(other, 9, at=t + 15)])
    await store.loyalty_apply([middle])
    assert await store.loyalty_ledger(cid) == [early, middle, late]
    assert [e.points for e in await store.loyalty_ledger(other)] == [9]


async def test_concurrent_redemptions_never_overdraw(store):
    cid = new_id()
    await store.loyalty_apply([entry(cid, 100)])

    async def redeem() -> bool:
        try:
            await store.loyalty_apply([entry(cid, -30, kind="redeem")])
            return True
        except Conflict:
            return False

    results = await asyncio.gather(*[redeem() for _ in range(10)])
    assert sum(results) == 3
    assert (await store.loyalty_account(cid)).balance == 10
    ledger = await store.loyalty_ledger(cid)
    assert sorted(e.points for e in ledger) == [-30, -30, -30, 100]


async def test_concurrent_credits_of_a_new_account_all_count(store):
    cid = new_id()
    await asyncio.gather(*[store.loyalty_apply([entry(cid, 7, base=1)]) for _ in range(8)])
    assert await store.loyalty_account(cid) == LoyaltyAccount(
        customer_id=cid, balance=56, lifetime_base_points=8)


async def test_place_order_debits_points_in_the_same_write(store, build):
    cid = new_id()
    await store.loyalty_apply([entry(cid, 100)])
    cart = build.cart(customer_id=cid)
    await store.create_cart(cart)
    order = build.order(cart)
    redeem = entry(cid, -80, kind="redeem", id=f"redeem:{order.id}", order_id=order.id)
    await store.place_order(order, build.closed(cart), cart.version,
                            [build.event("order.placed", order.id, build.T0)], [redeem])
    assert await store.get_order(order.id) == order
    assert (await store.loyalty_account(cid)).balance == 20
    assert (await store.loyalty_ledger(cid))[-1] == redeem


async def test_place_order_with_too_few_points_places_nothing(store, build):
    cid = new_id()
    await store.loyalty_apply([entry(cid, 50)])
    cart = build.cart(customer_id=cid)
    await store.create_cart(cart)
    order = build.order(cart)
    redeem = entry(cid, -80, kind="redeem", id=f"redeem:{order.id}", order_id=order.id)
    with pytest.raises(Conflict):
        await store.place_order(order, build.closed(cart), cart.version,
                                [build.event("order.placed", order.id, build.T0)], [redeem])
    assert await store.get_order(order.id) is None
    assert await store.get_cart(cart.id) == cart  # still open, same version
    assert await store.pending_events() == []
    assert (await store.loyalty_account(cid)).balance == 50
    assert len(await store.loyalty_ledger(cid)) == 1
    # the same checkout without points goes through and touches no points
    await store.place_order(order, build.closed(cart), cart.version, [])
    assert (await store.loyalty_account(cid)).balance == 50
