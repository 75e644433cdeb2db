"""Low-stock thresholds through the port, and the ``stock.low`` events a crossing writes.

SQL writes the events in the same transaction as the change; DynamoDB derives them from
the stock row's stream images (the stream worker calls ``low_stock_event``). ``low_events``
plays that worker's part on DynamoDB, so every store answers the same question: which
``stock.low`` events are in the outbox after these changes.
"""

from __future__ import annotations

from typing import Any

from kernel.store.base import Store

LOC = "hub-1"
MARKETS = ["DE", "JP"]  # a warehouse serving two markets: an event for each


async def low_events(store: Store) -> list[Any]:
    if store.name == "dynamodb":
        import boto3
        from botocore.config import Config

        streams = boto3.client("dynamodbstreams", region_name="eu-central-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing",
                               config=Config(account_id_endpoint_mode="disabled"))
        arn = store.client.describe_table(TableName=store.table_name)["Table"][  # type: ignore[attr-defined]
            "LatestStreamArn"]
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it:
                out = streams.get_records(ShardIterator=it, Limit=1000)
                for r in out["Records"]:
                    d = r["dynamodb"]
                    if r["eventName"] == "MODIFY" and d["Keys"]["pk"]["S"].startswith("S#"):
                        # what the worker does: ids from the record's, so re-reading the
                        # stream writes nothing twice
                        await store.low_stock_event(d.get("OldImage", {}), d["NewImage"],
                                                    f"low-{r['eventID']}", 1.0)
                if not out["Records"]:
                    break
                it = out.get("NextShardIterator")
    return [e for e in await store.pending_events(1000) if e.type == "stock.low"]


async def new_low(store: Store, seen: set[str]) -> list[Any]:
    """The stock.low events written since the last call with this ``seen``."""
    fresh = [e for e in await low_events(store) if e.id not in seen]
    seen.update(e.id for e in fresh)
    return fresh


async def _setup(store: Store, build: Any, sku: str = "SKU-LOW", *, markets: list[str] = MARKETS
                 ) -> None:
    await store.put_product(build.product(sku))
    await store.put_location(build.location(LOC, markets))


async def test_set_stock_sets_and_keeps_the_low_threshold(store, build):
    await _setup(store, build)
    # a threshold alone creates the row with nothing on hand
    level = await store.set_stock("SKU-LOW", LOC, None, "threshold", build.T0, low_threshold=4)
    assert (level.on_hand, level.reserved, level.low_threshold) == (0, 0, 4)
    level = await store.set_stock("SKU-LOW", LOC, 20, "count", build.T0)  # threshold kept
    assert (level.on_hand, level.low_threshold) == (20, 4)
    level = await store.set_stock("SKU-LOW", LOC, None, "threshold", build.T0, low_threshold=6)
    assert (level.on_hand, level.low_threshold) == (20, 6)  # on_hand kept
    stored = await build.level(store, "SKU-LOW", LOC)
    assert (stored.on_hand, stored.reserved, stored.low_threshold) == (20, 0, 6)
    level = await store.adjust_stock("SKU-LOW", LOC, -1, "pos_sale", build.T0)
    assert level.low_threshold == 6
    # nothing fell low: available 19 > 6
    assert await low_events(store) == []


async def test_a_threshold_only_change_keeps_the_reserved_check_out_of_the_way(store, build):
    await _setup(store, build)
    await store.set_stock("SKU-LOW", LOC, 5, "count", build.T0)
    await build.placed(store, reservations=[("SKU-LOW", LOC, 5)])
    level = await store.set_stock("SKU-LOW", LOC, None, "threshold", build.T0, low_threshold=1)
    assert (level.on_hand, level.reserved, level.low_threshold) == (5, 5, 1)


async def test_adjust_crossing_the_threshold_writes_one_event_per_market_once(store, build):
    await _setup(store, build)
    seen: set[str] = set()
    await store.set_stock("SKU-LOW", LOC, 10, "count", build.T0, low_threshold=3)
    await store.adjust_stock("SKU-LOW", LOC, -5, "pos_sale", build.T0)  # 5 left: above
    assert await new_low(store, seen) == []
    await store.adjust_stock("SKU-LOW", LOC, -2, "marketplace_sale", build.T0)  # 3: crossed
    events = await new_low(store, seen)
    assert sorted(e.market for e in events) == sorted(MARKETS)
    for e in events:
        assert e.subject == f"SKU-LOW@{LOC}"
        assert e.data == {"sku": "SKU-LOW", "location_id": LOC, "available": 3,
                          "threshold": 3, "reason": "marketplace_sale"}
    assert len({e.id for e in events}) == len(MARKETS)
    # further sales below the threshold stay quiet: a crossing, not every change
    await store.adjust_stock("SKU-LOW", LOC, -1, "write_off", build.T0)
    assert await new_low(store, seen) == []
    # restocked above it, then sold down again: a new crossing
    await store.adjust_stock("SKU-LOW", LOC, 5, "receipt", build.T0)  # 7
    assert await new_low(store, seen) == []
    await store.adjust_stock("SKU-LOW", LOC, -5, "pos_sale", build.T0)  # 2
    events = await new_low(store, seen)
    assert sorted(e.market for e in events) == sorted(MARKETS)
    assert {(e.data["available"], e.data["reason"]) for e in events} == {(2, "pos_sale")}


async def test_set_stock_crossing_by_count_or_by_threshold_writes_stock_low(store, build):
    await _setup(store, build, markets=["DE"])
    seen: set[str] = set()
    # a new row that starts low has no "before": whoever creates it knows its level
    await store.set_stock("SKU-LOW", LOC, 2, "count", build.T0, low_threshold=5)
    assert await new_low(store, seen) == []
    await store.set_stock("SKU-LOW", LOC, 9, "count", build.T0)  # above again
    await store.set_stock("SKU-LOW", LOC, 4, "count", build.T0)  # counted down to 4 <= 5
    events = await new_low(store, seen)
    assert [(e.market, e.data["reason"], e.data["available"]) for e in events] == [
        ("DE", "count", 4)]
    await store.set_stock("SKU-LOW", LOC, 9, "count", build.T0)
    assert await new_low(store, seen) == []
    # raising the threshold over what is available is a crossing too
    await store.set_stock("SKU-LOW", LOC, None, "threshold", build.T0, low_threshold=9)
    events = await new_low(store, seen)
    assert [(e.data["reason"], e.data["available"], e.data["threshold"]) for e in events
            ] == [("threshold", 9, 9)]
    # threshold 0 turns the alert off
    await store.set_stock("SKU-LOW", LOC, 20, "count", build.T0, low_threshold=0)
    await store.adjust_stock("SKU-LOW", LOC, -20, "write_off", build.T0)
    assert await new_low(store, seen) == []


async def test_a_reservation_crossing_names_its_order_and_every_market(store, build):
    await _setup(store, build)
    seen: set[str] = set()
    await store.set_stock("SKU-LOW", LOC, 6, "count", build.T0, low_threshold=2)
    await build.placed(store, reservations=[("SKU-LOW", LOC, 3)])  # 3 left
    assert await new_low(store, seen) == []
    second, _ = await build.placed(store, reservations=[("SKU-LOW", LOC, 2)])  # 1 left
    events = await new_low(store, seen)
    # the checkout was in DE (build.placed), yet JP sells from the same shelf
    assert sorted(e.market for e in events) == sorted(MARKETS)
    for e in events:
        assert e.data == {"sku": "SKU-LOW", "location_id": LOC, "available": 1,
                          "threshold": 2, "reason": "reservation", "order_id": second.id}
