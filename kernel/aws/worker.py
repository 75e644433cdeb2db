"""The stream worker: the table's DynamoDB stream, through Powertools batch processing.

* ``INSERT`` of an outbox item (``EV#<id>``): the event goes to the kernel's own consumer
  and the plugins' notify hooks (``Dispatcher.deliver``: the loyalty ledger first), is
  published to EventBridge (``Source`` ``niaga``, ``DetailType`` the event type, bus
  ``NIAGA_EVENT_BUS``), then marked delivered.
* ``REMOVE`` of a reservation item (``R#<order>``) by DynamoDB's TTL (user identity
  ``Service`` / ``dynamodb.amazonaws.com``): what it still held goes back to stock, unless
  the order exists.
* ``MODIFY`` of a stock row (``S#<sku>``) that a reservation, an adjustment (POS or
  marketplace sale, write-off) or a count took into low stock (crossing its threshold, not
  every change below it): one ``stock.low`` event per market the location serves is written
  to the outbox (ids derived from the record's), and so reaches those markets' hooks and
  EventBridge like any other event. Derived here, not in the write, so a checkout pays no
  capacity for it.

Invoked with ``{"redrive": {...}}`` instead of stream records, it delivers the outbox
events still undelivered after their records failed for good (:func:`redrive`).

At least once, applied once: a record delivered twice finds its event marked delivered
(or its release marker written) and does nothing; the ledger's entry ids are idempotent
too. A record that fails is reported in ``batchItemFailures`` and only it is retried.

Metrics (EMF, namespace ``Niaga``, dimension ``service=niaga-worker``), one log line per
invocation that has any: ``EventsDelivered`` (outbox events handed to the hooks and
EventBridge), ``OutboxLag`` (milliseconds from an event's ``at`` to its delivery, one value
per event), ``ReservationUnitsReleased`` (units a TTL-deleted hold gave back) and
``RecordFailures`` (records that failed: those reported in ``batchItemFailures``, which
Lambda does not count as ``Errors``, and every record of a batch in which all failed,
which Powertools raises as an invocation error). Powertools' ``Metrics`` is imported by
``aws_lambda_powertools`` itself: no cold-start cost.

No Litestar here: this module imports the domain, the store and Powertools only.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from kernel.aws import config
from kernel.events import Event

logger = Logger(service="niaga-worker")
metrics = Metrics(namespace="Niaga", service="niaga-worker")
config.route_kernel_logs(logger)  # kernel logs as JSON too, on Lambda
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
SOURCE = "niaga"
TTL_PRINCIPAL = "dynamodb.amazonaws.com"

_events_client: Any = None
_run = config.run  # one event loop per container, reused by every record


def _events() -> Any:
    global _events_client
    if _events_client is None:
        import botocore.session  # not boto3: its import only costs cold start

        _events_client = botocore.session.get_session().create_client("events")
    return _events_client


def publish(event: Event, bus: str) -> None:
    """One ``PutEvents`` entry; a rejected entry raises, so the record is retried."""
    detail = msgspec.json.encode(event).decode()
    out = _events().put_events(Entries=[{
        "Source": SOURCE, "DetailType": event.type, "Detail": detail,
        "EventBusName": bus, "Resources": [],
    }])
    if out.get("FailedEntryCount"):
        entry = out.get("Entries", [{}])[0]
        raise RuntimeError(f"EventBridge rejected {event.type} {event.id}: "
                           f"{entry.get('ErrorCode')} {entry.get('ErrorMessage')}")


async def _outbox(image: dict[str, Any]) -> str:
    niaga = config.shared_niaga()
    store: Any = niaga.store
    event = store.event_from_item(image)
    if await store.event_delivered(event.id):
        return "duplicate"
    return await _deliver(event)


async def _deliver(event: Event) -> str:
    niaga = config.shared_niaga()
    store: Any = niaga.store
    await niaga.dispatcher.deliver(event)  # ledger (idempotent ids), then notify hooks
    publish(event, config.Settings.from_env().event_bus)
    now = niaga.clock()
    await store.mark_events_delivered([event.id], now)
    metrics.add_metric(name="EventsDelivered", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="OutboxLag", unit=MetricUnit.Milliseconds,
                       value=max(0.0, round((now - event.at) * 1000, 1)))
    return "delivered"


async def _expired_hold(image: dict[str, Any]) -> str:
    niaga = config.shared_niaga()
    store: Any = niaga.store
    order_id = image["pk"]["S"][2:]
    released = await store.release_deleted_reservation(order_id, image.get("rows", {}),
                                                       niaga.clock())
    logger.info("reservation deleted by TTL", extra={"order_id": order_id,
                                                      "units_released": released})
    if released:
        metrics.add_metric(name="ReservationUnitsReleased", unit=MetricUnit.Count,
                           value=released)
    return "released" if released else "nothing"


async def _stock_change(raw: dict[str, Any]) -> str:
    niaga = config.shared_niaga()
    store: Any = niaga.store
    stream = raw["dynamodb"]
    events = await store.low_stock_event(stream.get("OldImage") or {}, stream["NewImage"],
                                         f"low-{raw['eventID']}", niaga.clock())
    return "stock.low" if events else "ignored"


def _low_threshold(stream: dict[str, Any]) -> bool:
    return int(stream.get("NewImage", {}).get("lt", {}).get("N", "0")) > 0


def _by_ttl(raw: dict[str, Any]) -> bool:
    identity = raw.get("userIdentity") or {}
    return (identity.get("type") == "Service"
            and identity.get("principalId") == TTL_PRINCIPAL)


def record_handler(record: DynamoDBRecord) -> str:
    raw = record.raw_event
    name = raw.get("eventName")
    stream = raw.get("dynamodb") or {}
    pk = (stream.get("Keys") or {}).get("pk", {}).get("S", "")
    if name == "INSERT" and pk.startswith("EV#"):
        return _run(_outbox(stream["NewImage"]))
    if name == "REMOVE" and pk.startswith("R#") and _by_ttl(raw):
        return _run(_expired_hold(stream.get("OldImage") or {}))
    if name == "MODIFY" and pk.startswith("S#") and _low_threshold(stream):
        return _run(_stock_change(raw))
    return "ignored"


REDRIVE_OLDER_THAN_S = 900.0  # younger events may still be on their way through the stream


async def _redrive(older_than_s: float, limit: int) -> dict[str, int]:
    niaga = config.shared_niaga()
    store: Any = niaga.store
    now, done, recent = niaga.clock(), 0, 0
    for event in await store.pending_events(limit):  # a consistent Scan of the table
        if now - event.at < older_than_s:
            recent += 1
            continue
        await _deliver(event)
        done += 1
    return {"redelivered": done, "left_recent": recent}


def redrive(request: dict[str, Any]) -> dict[str, int]:
    """Deliver outbox events the stream never got through (their records ended in the
    dead-letter queue, or aged out): the operator invokes the worker with
    ``{"redrive": {"older_than_s": 900, "limit": 100}}`` (docs/operating-aws.md). Events
    younger than ``older_than_s`` are left to the stream. Delivery is the stream's own
    (hooks, EventBridge, marked delivered), so running it twice delivers nothing twice."""
    older = float(request.get("older_than_s", REDRIVE_OLDER_THAN_S))
    limit = max(1, min(int(request.get("limit", 100)), 1000))
    counts = _run(_redrive(older, limit))
    logger.info("redrive", extra=counts)
    return counts


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if isinstance(event.get("redrive"), dict):  # an operator's invocation, not the stream
        try:
            return redrive(event["redrive"])
        finally:
            if metrics.metric_set:
                metrics.flush_metrics()
            else:
                metrics.clear_metrics()
    try:
        result = process_partial_response(event=event, record_handler=record_handler,
                                          processor=processor, context=context)
        if result.get("batchItemFailures"):
            metrics.add_metric(name="RecordFailures", unit=MetricUnit.Count,
                               value=len(result["batchItemFailures"]))
            logger.warning("records failed", extra={"failures": json.dumps(
                result["batchItemFailures"])})
        return result
    except BatchProcessingError:  # every record failed: an invocation error, batch retried
        metrics.add_metric(name="RecordFailures", unit=MetricUnit.Count,
                           value=len(event.get("Records") or []))
        raise
    finally:
        if metrics.metric_set:  # a batch of ignored records has nothing to flush
            metrics.flush_metrics()
        else:
            metrics.clear_metrics()


def reset() -> None:
    """Forget the container's clients (tests)."""
    global _events_client
    _events_client = None
    config.reset()
