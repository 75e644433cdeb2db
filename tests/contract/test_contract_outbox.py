"""Storage contract: the outbox (events written with the change they describe)."""

from __future__ import annotations

from kernel.ids import new_id


async def test_pending_events_come_in_time_order_until_delivered(store, build):
    t = build.T0
    # written in three atomic writes, out of time order
    late = [build.event("order.placed", "o-3", t + 30), build.event("order.paid", "o-3", t + 31)]
    early = [build.event("order.placed", "o-1", t + 10)]
    middle = [build.event("order.placed", "o-2", t + 20)]
    await build.placed(store, events=late)
    await build.placed(store, events=early)
    await store.set_stock("SKU-A", "de-lej-wh", 5, "count", t)
    await store.reserve([build.reservation(new_id(), "SKU-A", "de-lej-wh", 1)], "DE", middle)

    everything = [*early, *middle, *late]
    assert await store.pending_events() == everything
    assert await store.pending_events(limit=2) == everything[:2]

    await store.mark_events_delivered([e.id for e in everything[:2]], t + 40)
    assert await store.pending_events() == everything[2:]

    await store.mark_events_delivered([], t + 41)  # nothing to do
    await store.mark_events_delivered([everything[2].id, "unknown-id"], t + 42)
    assert await store.pending_events() == everything[3:]

    await store.mark_events_delivered([e.id for e in everything], t + 43)  # again: no-op
    assert await store.pending_events() == []


async def test_event_data_round_trips(store, build):
    event = build.event("order.returned", "o-1", build.T0, market="JP", number="JP-AB12-CD34",
                        refund="1980", lines={"line-1": 2}, tags=["a", "b"], restock=True,
                        note="返品 – ok", nothing=None)
    await build.placed(store, events=[event])
    [got] = await store.pending_events()
    assert got == event
    assert got.data["lines"] == {"line-1": 2}


async def test_pending_events_limit_pages_through_many(store, build):
    events = [build.event("order.placed", f"o-{i}", build.T0 + i) for i in range(25)]
    await build.placed(store, events=events)
    seen = []
    while batch := await store.pending_events(limit=10):
        assert len(batch) <= 10
        seen += batch
        await store.mark_events_delivered([e.id for e in batch], build.T0 + 100)
    assert seen == events
