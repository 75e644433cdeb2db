"""Storage contract: the customer profile document, its versioned save, and erasure of the
loyalty ledger's free text."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from kernel.customers import Consent, ConsentChange, SavedAddress
from kernel.errors import VersionConflict
from kernel.loyalty import LedgerEntry


def _edited(customer, *, version: int, name: str):
    return msgspec.structs.replace(
        customer, version=version, name=name, phone="+49 30 123456", locale="de-DE",
        updated_at=customer.created_at + version,
        addresses=[SavedAddress(id="a1", label="home", country="DE", city="Berlin",
                                line1="Invalidenstraße 1", name=name, default=True)],
        consents={"marketing_email": Consent(granted=True, changed_at=1.5, channel="app")},
        consent_history=[ConsentChange(topic="marketing_email", granted=True, at=1.5,
                                       channel="app")])


async def test_save_customer_writes_the_whole_profile_at_the_expected_version(store, build):
    customer = build.customer("erika@example.com", token_hash="a" * 64)
    await store.create_customer(customer)
    assert customer.version == 1

    v2 = _edited(customer, version=2, name="Erika M.")
    await store.save_customer(v2, 1)
    assert await store.get_customer(customer.id) == v2
    assert await store.get_customer_by_token("a" * 64) == v2  # the lookups read the new doc
    assert await store.get_customer_by_email("erika@example.com") == v2

    v3 = _edited(v2, version=3, name="Erika Mustermann")
    await store.save_customer(v3, 2)
    assert await store.get_customer(customer.id) == v3


async def test_a_stale_or_unknown_save_is_a_version_conflict_and_changes_nothing(store, build):
    customer = build.customer("max@example.com")
    await store.create_customer(customer)
    await store.save_customer(_edited(customer, version=2, name="first"), 1)
    stored = await store.get_customer(customer.id)

    with pytest.raises(VersionConflict):
        await store.save_customer(_edited(customer, version=2, name="second"), 1)
    with pytest.raises(VersionConflict):
        await store.save_customer(_edited(customer, version=4, name="ahead"), 3)
    assert await store.get_customer(customer.id) == stored

    ghost = build.customer("ghost@example.com")
    with pytest.raises(VersionConflict):
        await store.save_customer(ghost, 1)
    assert await store.get_customer(ghost.id) is None


async def test_concurrent_saves_at_one_version_let_exactly_one_win(store, build):
    customer = build.customer("race@example.com")
    await store.create_customer(customer)
    names = [f"writer {i}" for i in range(4)]
    results = await asyncio.gather(
        *[store.save_customer(_edited(customer, version=2, name=n), 1) for n in names],
        return_exceptions=True)
    lost = [r for r in results if isinstance(r, VersionConflict)]
    assert len(lost) == len(names) - 1, results
    winner = names[next(i for i, r in enumerate(results) if r is None)]
    assert (await store.get_customer(customer.id)).name == winner


async def test_erase_clears_ledger_notes_only_and_wins_over_a_stale_edit(store, build):
    customer = build.customer("erika@example.com", token_hash="b" * 64)
    other = build.customer("max@example.com")
    for c in (customer, other):
        await store.create_customer(c)
    entries = [
        LedgerEntry(id="earn:o1", customer_id=customer.id, points=120, kind="earn",
                    order_id="o1", market="DE", at=build.T0, base_points=120,
                    note="order DE-1"),
        LedgerEntry(id="adjust:1", customer_id=customer.id, points=30, kind="adjust",
                    at=build.T0 + 1, note="goodwill for Erika Mustermann"),
        LedgerEntry(id="redeem:o2", customer_id=customer.id, points=-50, kind="redeem",
                    order_id="o2", market="DE", at=build.T0 + 2),
        LedgerEntry(id="adjust:2", customer_id=other.id, points=10, kind="adjust",
                    at=build.T0, note="goodwill for Max"),
    ]
    await store.loyalty_apply(entries)
    account = await store.loyalty_account(customer.id)
    edited = _edited(customer, version=2, name="Erika M.")
    await store.save_customer(edited, 1)

    erased = msgspec.structs.replace(edited, email=None, name=None, token_hash=None,
                                     phone=None, locale=None, addresses=[], consents={},
                                     consent_history=[], erased=True, version=3)
    notes = [msgspec.structs.replace(e, note=None) for e in entries[:2]]
    await store.erase_customer(erased, [], [], notes)

    assert await store.get_customer(customer.id) == erased
    assert await store.get_customer_by_token("b" * 64) is None
    ledger = await store.loyalty_ledger(customer.id)
    assert ledger == [msgspec.structs.replace(e, note=None) for e in entries[:3]]
    assert await store.loyalty_account(customer.id) == account  # the books stay
    assert await store.loyalty_ledger(other.id) == [entries[3]]  # nobody else's

    # an edit that read the profile before the erasure cannot bring the data back
    with pytest.raises(VersionConflict):
        await store.save_customer(_edited(edited, version=3, name="Erika"), 2)
    assert await store.get_customer(customer.id) == erased
