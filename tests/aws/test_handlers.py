"""The Lambda handlers (kernel/aws) under moto: the API through Mangum with API Gateway HTTP
API v2 events, the stream worker fed the records moto's stream holds, the sweeper.

Everything AWS is moto in-process: the single table (made by DynamoStore.create_schema),
Powertools' idempotency table, the markets file in SSM, an EventBridge bus whose rule
forwards to an SQS queue, so a publish is observed as a message, not a stub.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kernel.markets import demo_markets_path, load_markets

pytestmark = pytest.mark.dynamodb

REGION = "eu-central-1"
TABLE = "niaga-aws-test"
IDEMPOTENCY_TABLE = "niaga-idempotency-test"
BUS = "niaga-test-bus"
MARKETS_PARAM = "/niaga/test/markets"
ADMIN = "adm_lambda_token"

ADDRESS_ID = {"country": "ID", "region": "DKI Jakarta", "city": "Jakarta",
              "postal_code": "10110", "line1": "Jl. Merdeka No. 1", "name": "Budi Santoso",
              "email": "budi@example.com", "phone": "+62 812 0000 0000"}


class Context:
    """The parts of a Lambda context Powertools reads."""

    function_name = "niaga-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:niaga-test"
    aws_request_id = "req-test"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto with the table (seeded), the idempotency table, the markets in SSM, a bus → SQS."""
    import boto3
    from moto import mock_aws

    for name, value in {
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "NIAGA_TABLE": TABLE, "NIAGA_IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
        "NIAGA_EVENT_BUS": BUS, "NIAGA_MARKETS_PARAM": MARKETS_PARAM,
        "NIAGA_ADMIN_TOKEN": ADMIN, "POWERTOOLS_METRICS_NAMESPACE": "Niaga",
        "POWERTOOLS_SERVICE_NAME": "niaga",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NIAGA_DYNAMODB_ENDPOINT", raising=False)
    monkeypatch.delenv("NIAGA_ADMIN_TOKEN_PARAM", raising=False)

    from kernel.aws import api, worker
    from kernel.demo import seed
    from kernel.store.dynamodb import DynamoStore

    with mock_aws():
        api.reset()
        worker.reset()
        store = DynamoStore(TABLE)
        markets = load_markets(demo_markets_path())

        async def prepare() -> None:
            await store.create_schema()
            await seed(store, markets, time.time())

        asyncio.run(prepare())
        ddb = boto3.client("dynamodb")
        ddb.create_table(TableName=IDEMPOTENCY_TABLE, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        boto3.client("ssm").put_parameter(
            Name=MARKETS_PARAM, Type="String", Tier="Advanced",
            Value=demo_markets_path().read_text(encoding="utf-8"))
        events = boto3.client("events")
        events.create_event_bus(Name=BUS)
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="niaga-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        events.put_rule(Name="all-niaga", EventBusName=BUS,
                        EventPattern=json.dumps({"source": ["niaga"]}))
        events.put_targets(Rule="all-niaga", EventBusName=BUS,
                           Targets=[{"Id": "queue", "Arn": queue_arn}])
        yield {"ddb": ddb, "sqs": sqs, "queue_url": queue_url, "store": store}
        api.reset()
        worker.reset()


# -- API Gateway HTTP API (payload 2.0) events ---------------------------------------------

def http_event(method: str, path: str, body: Any = None,
               headers: dict[str, str] | None = None, query: str = "") -> dict[str, Any]:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    hdrs = {"host": "api.example.com", "content-type": "application/json",
            **{k.lower(): v for k, v in (headers or {}).items()}}
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": hdrs,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": request_id, "routeKey": "$default",
            "stage": "$default", "time": "23/Nov/2026:06:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.1", "userAgent": "pytest"},
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def call(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
         query: str = "") -> tuple[int, Any]:
    from kernel.aws.api import handler

    out = handler(http_event(method, path, body, headers, query), Context())
    text = out.get("body") or ""
    if out.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    return out["statusCode"], (json.loads(text) if text else None)


def ready_cart(sku: str = "BATIK-SHIRT-M", quantity: int = 2) -> str:
    status, cart = call("POST", "/carts", {"market": "ID", "channel": "web"})
    assert status == 201, cart
    status, cart = call("POST", f"/carts/{cart['id']}/lines", {"sku": sku, "quantity": quantity})
    assert status == 200, cart
    status, cart = call("PUT", f"/carts/{cart['id']}/address", ADDRESS_ID)
    assert status == 200, cart
    status, options = call("GET", f"/carts/{cart['id']}/delivery-options")
    assert status == 200, options
    ship = [o for o in options if o["kind"] == "ship"]
    ship.sort(key=lambda o: o["carrier"] != "flat-rate")
    status, cart = call("PUT", f"/carts/{cart['id']}/delivery", {"option_id": ship[0]["id"]})
    assert status == 200, cart
    return cart["id"]


def checkout(cart_id: str, method: str = "testpay", key: str | None = None,
             **payment: Any) -> tuple[int, Any]:
    body = {"payment": {"method": method, **({"token": "tok_ok"} if method == "testpay"
                                               else {}), **payment}}
    return call("POST", f"/carts/{cart_id}/checkout", body,
                {"Idempotency-Key": key or f"key-{uuid.uuid4().hex}"})


# -- the table's stream, as Lambda would receive it ----------------------------------------

def stream_records(ddb: Any, after: str | None = None) -> list[dict[str, Any]]:
    """Every record of the table's stream (after a sequence number), JSON-shaped."""
    import boto3

    from kernel.aws.local import as_lambda_json

    streams = boto3.client("dynamodbstreams")
    arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            out = streams.get_records(ShardIterator=it, Limit=1000)
            records += out["Records"]
            if not out["Records"]:
                break
            it = out.get("NextShardIterator")
    records = [{**as_lambda_json(r), "eventSourceARN": arn} for r in records]
    if after is not None:
        records = [r for r in records
                   if int(r["dynamodb"]["SequenceNumber"]) > int(after)]
    return records


def work(records: list[dict[str, Any]]) -> dict[str, Any]:
    from kernel.aws.worker import handler

    return handler({"Records": records}, Context())


def published(aws: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)
        msgs = got.get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=m["ReceiptHandle"])


def outbox(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["eventName"] == "INSERT"
            and r["dynamodb"]["Keys"]["pk"]["S"].startswith("EV#")]


# -- tests ----------------------------------------------------------------------------------

def test_full_checkout_through_the_api_handler(aws, capsys):
    cart_id = ready_cart()
    status, order = checkout(cart_id)
    assert status == 201, order
    assert order["status"] in ("paid", "placed", "pending_payment", "authorized"), order
    assert order["market"] == "ID" and order["total"]["currency"] == "IDR"

    status, again = call("GET", f"/orders/{order['id']}")
    assert status == 200, again
    assert again["id"] == order["id"] and again["total"] == order["total"]

    # EMF metrics on stdout: one order placed, its revenue under the market's dimension
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{") and "_aws" in line]
    names = {m["Name"] for b in blobs for d in b["_aws"]["CloudWatchMetrics"]
             for m in d["Metrics"]}
    assert {"OrdersPlaced", "Revenue"} <= names
    revenue = next(b for b in blobs if "Revenue" in b)
    assert revenue["market"] == "ID" and revenue["currency"] == "IDR"
    assert revenue["service"] == "niaga-api"  # not POWERTOOLS_SERVICE_NAME's "niaga"
    assert revenue["Revenue"] in (float(order["total"]["amount"]),
                                  [float(order["total"]["amount"])])
    assert all(b["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Niaga" for b in blobs)


def test_checkout_failure_is_counted_and_bad_input_is_a_problem(aws, capsys):
    cart_id = ready_cart()
    status, problem = call("POST", f"/carts/{cart_id}/checkout",
                           {"payment": {"method": "testpay", "token": "tok_ok"}})
    assert status == 422 and problem["errors"][0]["field"] == "Idempotency-Key"
    status, problem = checkout(cart_id, method="no-such-method")
    assert 400 <= status < 500, problem
    out = capsys.readouterr().out
    assert "CheckoutFailures" in out and "OrdersPlaced" not in out


def test_a_retried_checkout_returns_the_same_order_and_a_changed_body_is_refused(aws):
    cart_id = ready_cart()
    key = f"key-{uuid.uuid4().hex}"
    status, first = checkout(cart_id, key=key)
    assert status == 201, first
    status, second = checkout(cart_id, key=key)
    assert status == 201 and second["id"] == first["id"]  # answered from the idempotency table
    status, problem = checkout(cart_id, key=key, method="testpay", token="tok_other")
    assert status == 422 and problem["errors"][0]["field"] == "Idempotency-Key"
    items = aws["ddb"].scan(TableName=IDEMPOTENCY_TABLE)["Items"]
    assert len(items) == 1 and items[0]["status"]["S"] == "COMPLETED"


def test_worker_publishes_outbox_events_once_and_reports_a_failing_record(aws):
    cart_id = ready_cart()
    status, order = checkout(cart_id)
    assert status == 201, order
    records = stream_records(aws["ddb"])
    events = outbox(records)
    assert events, "the checkout wrote its events to the outbox"

    assert work(records) == {"batchItemFailures": []}
    sent = published(aws)
    assert sorted(m["detail-type"] for m in sent) == sorted(
        r["dynamodb"]["NewImage"]["ty"]["S"] for r in events)
    placed = next(m for m in sent if m["detail-type"] == "order.placed")
    assert placed["source"] == "niaga" and placed["detail"]["subject"] == order["id"]

    # every outbox item is marked delivered: the local relay has nothing left
    from kernel.aws.config import shared_niaga

    assert asyncio.run(shared_niaga().store.pending_events()) == []

    # redelivery (the same records again) publishes nothing, credits nothing twice
    ledger_before = aws["ddb"].scan(TableName=TABLE, FilterExpression="begins_with(pk, :y)",
                                    ExpressionAttributeValues={":y": {"S": "Y#"}})["Count"]
    assert work(records) == {"batchItemFailures": []}
    assert published(aws) == []
    assert aws["ddb"].scan(TableName=TABLE, FilterExpression="begins_with(pk, :y)",
                           ExpressionAttributeValues={":y": {"S": "Y#"}})["Count"] == ledger_before

    # a record the worker cannot read is reported, and only it
    broken = json.loads(json.dumps(events[0]))
    broken["dynamodb"]["SequenceNumber"] = "999999999999999999999"
    broken["dynamodb"]["Keys"]["pk"]["S"] = broken["dynamodb"]["NewImage"]["pk"]["S"] = "EV#bad"
    del broken["dynamodb"]["NewImage"]["ty"]
    result = work([*events, broken])
    assert result == {"batchItemFailures": [{"itemIdentifier": "999999999999999999999"}]}


def test_worker_releases_a_reservation_deleted_by_ttl_once(aws):
    from kernel.inventory import Reservation

    store = aws["store"]
    sku, loc = "BATIK-SHIRT-M", None

    async def levels() -> dict[tuple[str, str], Any]:
        return await store.get_stock([sku])

    before = asyncio.run(levels())
    loc = next(iter(before))[1]
    order_id = f"ord_{uuid.uuid4().hex[:10]}"
    asyncio.run(store.reserve([Reservation(order_id=order_id, sku=sku, location_id=loc,
                                           quantity=3, expires_at=time.time() - 60)],
                              "ID", []))
    held = asyncio.run(levels())[(sku, loc)]
    assert held.reserved == before[(sku, loc)].reserved + 3
    mark = stream_records(aws["ddb"])[-1]["dynamodb"]["SequenceNumber"]

    # DynamoDB's TTL deletes the item (moto has no TTL sweeper: delete it, mark the record)
    aws["ddb"].delete_item(TableName=TABLE, Key={"pk": {"S": f"R#{order_id}"},
                                                 "sk": {"S": "R"}})
    removes = [r for r in stream_records(aws["ddb"], after=mark) if r["eventName"] == "REMOVE"]
    assert len(removes) == 1
    by_user = json.loads(json.dumps(removes[0]))
    assert work([by_user]) == {"batchItemFailures": []}  # a user's delete: not the worker's
    assert asyncio.run(levels())[(sku, loc)].reserved == held.reserved

    by_ttl = {**removes[0], "userIdentity": {"type": "Service",
                                             "principalId": "dynamodb.amazonaws.com"}}
    assert work([by_ttl]) == {"batchItemFailures": []}
    after = asyncio.run(levels())[(sku, loc)]
    assert after.reserved == before[(sku, loc)].reserved
    assert after.available == before[(sku, loc)].available
    assert work([by_ttl]) == {"batchItemFailures": []}  # redelivered: released once
    assert asyncio.run(levels())[(sku, loc)] == after


def test_sweeper_expires_an_unpaid_bank_transfer_order_past_its_window(aws):
    from kernel.aws import config, sweeper

    cart_id = ready_cart()
    status, order = checkout(cart_id, method="bank-transfer")
    assert status == 201 and order["status"] == "pending_payment", order

    assert sweeper.handler({}, Context()) == {"orders_expired": 0, "units_released": 0}
    window_h = load_markets(demo_markets_path())["ID"].payment_window_hours
    niaga = config.shared_niaga()
    niaga.clock = lambda: time.time() + window_h * 3600 + 60
    assert sweeper.handler({}, Context())["orders_expired"] == 1
    status, expired = call("GET", f"/orders/{order['id']}")
    assert status == 200 and expired["status"] in ("expired", "cancelled"), expired


def test_config_reads_the_admin_token_from_a_secure_parameter(aws, monkeypatch):
    import boto3

    from kernel.aws import config

    boto3.client("ssm").put_parameter(Name="/niaga/test/admin", Type="SecureString",
                                      Value="adm_from_ssm")
    monkeypatch.delenv("NIAGA_ADMIN_TOKEN")
    monkeypatch.setenv("NIAGA_ADMIN_TOKEN_PARAM", "/niaga/test/admin")
    assert config.admin_token(config.Settings.from_env()) == "adm_from_ssm"
    monkeypatch.delenv("NIAGA_TABLE")
    from kernel.errors import ConfigError

    with pytest.raises(ConfigError, match="NIAGA_TABLE"):
        config.Settings.from_env()


def test_the_worker_and_sweeper_do_not_import_litestar():
    code = ("import sys, kernel.aws.worker, kernel.aws.sweeper; "
            "sys.exit(1 if any(m == 'litestar' or m.startswith('litestar.') "
            "for m in sys.modules) else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr or "litestar was imported"


def _item(ddb: Any, pk: str, sk: str) -> dict[str, Any]:
    return ddb.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                        ConsistentRead=True).get("Item", {})


def test_a_reservation_expires_by_ttl_and_a_placed_order_holds_its_units_itself(aws):
    from kernel.inventory import Reservation
    from kernel.store.dynamodb import RESERVATION_TTL_GRACE

    # held for a checkout that has not become an order: DynamoDB's TTL is the backstop
    expires = time.time() + 900
    order_id = f"ord_{uuid.uuid4().hex[:10]}"
    loc = next(iter(asyncio.run(aws["store"].get_stock(["BATIK-SHIRT-M"]))))[1]
    asyncio.run(aws["store"].reserve([Reservation(order_id=order_id, sku="BATIK-SHIRT-M",
                                                  location_id=loc, quantity=1,
                                                  expires_at=expires)], "ID", []))
    held = _item(aws["ddb"], f"R#{order_id}", "R")
    assert int(held["ttl"]["N"]) == int(expires) + RESERVATION_TTL_GRACE
    assert held["gsi4pk"]["S"] == "RESEXP"

    # a placed order carries the units it holds; its reservation item is left behind
    status, order = checkout(ready_cart())
    assert status == 201, order
    placed = _item(aws["ddb"], f"O#{order['id']}", "O")
    reservation = _item(aws["ddb"], f"R#{order['id']}", "R")
    assert placed["rows"] == reservation["rows"], "the order holds what was reserved"

    # the sweeper's scan past both windows: only the unplaced one is an orphan, and the
    # placed order's leftover reservation item is dropped on the way
    assert asyncio.run(aws["store"].orphan_reservations(time.time() + 10**6)) == [order_id]
    assert _item(aws["ddb"], f"R#{order['id']}", "R") == {}
    assert _item(aws["ddb"], f"R#{order_id}", "R") != {}

    # cancelling gives the held units back, from the order item
    before = asyncio.run(aws["store"].get_stock(["BATIK-SHIRT-M"]))
    status, cancelled = call("POST", f"/admin/orders/{order['id']}/cancel", {},
                             {"Authorization": f"Bearer {ADMIN}"})
    assert status == 200, cancelled
    after = asyncio.run(aws["store"].get_stock(["BATIK-SHIRT-M"]))
    assert sum(lv.reserved for lv in before.values()) - sum(
        lv.reserved for lv in after.values()) == 2  # ready_cart's 2 units
    assert "rows" not in _item(aws["ddb"], f"O#{order['id']}", "O")


def test_a_fall_to_the_low_stock_threshold_reaches_hooks_and_eventbridge_once(aws):
    sku = "BATIK-SHIRT-M"
    levels = asyncio.run(aws["store"].get_stock([sku]))
    # one location fills the cart (demo stock); the threshold sits just under its level
    for (_, loc), level in levels.items():
        aws["ddb"].update_item(
            TableName=TABLE, Key={"pk": {"S": f"S#{sku}"}, "sk": {"S": f"L#{loc}"}},
            UpdateExpression="SET lt = :lt",
            ExpressionAttributeValues={":lt": {"N": str(level.available - 1)}})
    mark = stream_records(aws["ddb"])[-1]["dynamodb"]["SequenceNumber"]

    status, order = checkout(ready_cart(sku, quantity=2))
    assert status == 201, order
    records = stream_records(aws["ddb"], after=mark)
    falls = [r for r in records if r["eventName"] == "MODIFY"
             and r["dynamodb"]["Keys"]["pk"]["S"] == f"S#{sku}"]
    assert len(falls) == 1, "one stock row reserved"
    loc = falls[0]["dynamodb"]["Keys"]["sk"]["S"][2:]

    assert work(records) == {"batchItemFailures": []}
    assert work(falls) == {"batchItemFailures": []}  # the record again: written once
    low = [r for r in stream_records(aws["ddb"], after=records[-1]["dynamodb"]["SequenceNumber"])
           if r["eventName"] == "INSERT" and r["dynamodb"]["NewImage"]["ty"]["S"] == "stock.low"]
    assert len(low) == 1
    assert work(low) == {"batchItemFailures": []}
    sent = [m for m in published(aws) if m["detail-type"] == "stock.low"]
    assert len(sent) == 1
    detail = sent[0]["detail"]
    assert detail["market"] == "ID" and detail["subject"] == f"{sku}@{loc}"
    threshold = levels[(sku, loc)].available - 1
    assert detail["data"] == {"sku": sku, "location_id": loc, "order_id": order["id"],
                              "available": levels[(sku, loc)].available - 2,
                              "threshold": threshold, "reason": "reservation"}


def test_a_pos_sale_into_low_stock_writes_stock_low_for_every_market_of_the_location(aws):
    """Not only reservations: an adjustment (a POS or marketplace sale) that crosses the
    threshold is derived by the worker too, one event per market the location serves, and
    a further sale below the threshold writes nothing."""
    from kernel.catalog import Location

    store, sku, loc = aws["store"], "TOTE-CANVAS", "hub-id-jp"
    asyncio.run(store.put_location(Location(id=loc, name="Shared hub", kind="warehouse",
                                            markets=["ID", "JP"], country="ID")))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    status, level = call("PUT", f"/admin/inventory/{sku}/{loc}",
                         {"on_hand": 10, "low_threshold": 4}, admin)
    assert status == 200, level
    assert (level["on_hand"], level["low_threshold"], level["low"]) == (10, 4, False)
    mark = stream_records(aws["ddb"])[-1]["dynamodb"]["SequenceNumber"]
    for delta in (-5, -1, -1):  # 5 (above), 4 (crossed), 3 (still low: nothing new)
        status, level = call("POST", f"/admin/inventory/{sku}/{loc}/adjust",
                             {"delta": delta, "reason": "pos_sale"}, admin)
        assert status == 200, level
    assert (level["available"], level["low"]) == (3, True)
    records = stream_records(aws["ddb"], after=mark)
    assert work(records) == {"batchItemFailures": []}
    low = [r for r in outbox(stream_records(aws["ddb"], after=records[-1]["dynamodb"][
        "SequenceNumber"])) if r["dynamodb"]["NewImage"]["ty"]["S"] == "stock.low"]
    assert sorted(r["dynamodb"]["NewImage"]["mk"]["S"] for r in low) == ["ID", "JP"]
    assert work(low) == {"batchItemFailures": []}
    sent = [m for m in published(aws) if m["detail-type"] == "stock.low"]
    assert sorted(m["detail"]["market"] for m in sent) == ["ID", "JP"]
    for m in sent:
        assert m["detail"]["subject"] == f"{sku}@{loc}"
        assert m["detail"]["data"] == {"sku": sku, "location_id": loc, "available": 4,
                                       "threshold": 4, "reason": "pos_sale"}


def _worker_filters() -> list[dict[str, Any]]:
    from pathlib import Path

    from samtranslator.yaml_helper import yaml_parse

    root = Path(__file__).resolve().parents[2]
    template = yaml_parse((root / "infra" / "template.yaml").read_text(encoding="utf-8"))
    stream = template["Resources"]["WorkerFunction"]["Properties"]["Events"]["Stream"]
    return [json.loads(f["Pattern"]) for f in stream["Properties"]["FilterCriteria"]["Filters"]]


def test_the_stream_filter_passes_exactly_the_records_the_worker_acts_on(aws):
    from moto.events.models import EventPattern

    sku = "BATIK-SHIRT-M"
    loc = next(iter(asyncio.run(aws["store"].get_stock([sku]))))[1]
    aws["ddb"].update_item(
        TableName=TABLE, Key={"pk": {"S": f"S#{sku}"}, "sk": {"S": f"L#{loc}"}},
        UpdateExpression="SET lt = :lt", ExpressionAttributeValues={":lt": {"N": "5"}})
    status, order = checkout(ready_cart())
    assert status == 201, order
    aws["ddb"].delete_item(TableName=TABLE, Key={"pk": {"S": f"R#{order['id']}"},
                                                 "sk": {"S": "R"}})
    records = stream_records(aws["ddb"])
    ttl_delete = {**records[-1], "userIdentity": {"type": "Service",
                                                  "principalId": "dynamodb.amazonaws.com"}}
    records.append(ttl_delete)

    def acted_on(r: dict[str, Any]) -> bool:  # the rules of kernel/aws/worker.py's docstring
        pk, name = r["dynamodb"]["Keys"]["pk"]["S"], r["eventName"]
        return ((name == "INSERT" and pk.startswith("EV#"))
                or (name == "REMOVE" and pk.startswith("R#") and r is ttl_delete)
                or (name == "MODIFY" and pk.startswith("S#")
                    and r["dynamodb"]["NewImage"].get("lt", {}).get("N", "0") != "0"))

    patterns = [EventPattern(json.dumps(p), p) for p in _worker_filters()]
    passed = [r for r in records if any(p.matches_event(r) for p in patterns)]
    assert passed == [r for r in records if acted_on(r)]
    assert {r["eventName"] for r in passed} == {"INSERT", "MODIFY", "REMOVE"}
    assert len(passed) < len(records) / 2, "most of the stream costs no invocation"


# -- operating on AWS (docs/operating-aws.md): metrics, logs, markets, secrets --------------

def _emf(out: str) -> list[dict[str, Any]]:
    """The EMF blobs (one JSON line each) among a handler's stdout."""
    return [json.loads(line) for line in out.splitlines()
            if line.startswith("{") and '"_aws"' in line]


def _metric(blobs: list[dict[str, Any]], name: str) -> list[tuple[list[list[str]], Any, dict]]:
    """(dimension sets, value, the blob) of each blob carrying ``name``."""
    out = []
    for b in blobs:
        for d in b["_aws"]["CloudWatchMetrics"]:
            if any(m["Name"] == name for m in d["Metrics"]):
                out.append((d["Dimensions"], b[name], b))
    return out


def _alarm(name: str) -> dict[str, Any]:
    from pathlib import Path

    from samtranslator.yaml_helper import yaml_parse

    root = Path(__file__).resolve().parents[2]
    template = yaml_parse((root / "infra" / "template.yaml").read_text(encoding="utf-8"))
    return template["Resources"][name]["Properties"]


def _watches(blobs: list[dict[str, Any]], alarm: str) -> bool:
    """Whether an EMF blob is a data point of the metric a template alarm watches."""
    p = _alarm(alarm)
    want = {d["Name"]: d["Value"] for d in p["Dimensions"]}
    return any(dims == [sorted(want)] and {k: blob[k] for k in want} == want
               and blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == p["Namespace"]
               for dims, _, blob in _metric(blobs, p["MetricName"]))


def test_checkout_failures_are_counted_in_total_and_by_reason(aws, capsys):
    capsys.readouterr()
    status, problem = checkout(ready_cart(), method="no-such-method")
    assert 400 <= status < 500, problem
    blobs = _emf(capsys.readouterr().out)
    by_dims = {json.dumps(dims): (value, blob) for dims, value, blob in
               _metric(blobs, "CheckoutFailures")}
    assert set(by_dims) == {'[["service"]]', '[["service", "reason"]]'}
    assert by_dims['[["service"]]'][1]["service"] == "niaga-api"
    by_reason = by_dims['[["service", "reason"]]'][1]
    assert (by_reason["service"], by_reason["reason"]) == ("niaga-api", problem["code"])
    assert _metric(blobs, "OrdersPlaced") == []


def test_the_reason_is_a_problem_code_or_the_status():
    from kernel.aws.api import _reason

    def response(body: Any) -> dict[str, Any]:
        return {"statusCode": 409, "body": body if isinstance(body, str) else json.dumps(body)}

    assert _reason(response({"code": "out_of_stock"}), 409) == "out_of_stock"
    assert _reason(response({"title": "no code"}), 409) == "http_409"
    assert _reason(response("<html>not json"), 502) == "http_502"
    # never free text or an id as a dimension value (each value is a billed metric)
    assert _reason(response({"code": "Card 4242 declined for budi@example.com"}), 402) == (
        "http_402")


def test_a_placed_order_is_the_data_point_the_no_orders_alarm_watches(aws, capsys):
    capsys.readouterr()
    status, order = checkout(ready_cart())
    assert status == 201, order
    assert _watches(_emf(capsys.readouterr().out), "NoOrdersAlarm")


def test_the_worker_counts_deliveries_lag_and_failed_records(aws, capsys):
    status, order = checkout(ready_cart())
    assert status == 201, order
    events = outbox(stream_records(aws["ddb"]))
    capsys.readouterr()
    assert work(events) == {"batchItemFailures": []}
    blobs = _emf(capsys.readouterr().out)
    [(dims, delivered, blob)] = _metric(blobs, "EventsDelivered")
    assert dims == [["service"]] and blob["service"] == "niaga-worker"
    assert sum(delivered if isinstance(delivered, list) else [delivered]) == len(events)
    [(_, lag, _)] = _metric(blobs, "OutboxLag")
    lags = lag if isinstance(lag, list) else [lag]
    assert len(lags) == len(events) and all(0 <= v < 60_000 for v in lags)
    assert _metric(blobs, "RecordFailures") == []

    # a redelivery does nothing, so counts nothing (and flushes no empty blob)
    assert work(events) == {"batchItemFailures": []}
    assert _emf(capsys.readouterr().out) == []

    broken = json.loads(json.dumps(events[0]))
    broken["dynamodb"]["SequenceNumber"] = "999999999999999999999"
    broken["dynamodb"]["Keys"]["pk"]["S"] = broken["dynamodb"]["NewImage"]["pk"]["S"] = "EV#bad"
    del broken["dynamodb"]["NewImage"]["ty"]
    assert work([*events, broken])["batchItemFailures"] == [
        {"itemIdentifier": "999999999999999999999"}]  # a partial failure: not a Lambda error
    blobs = _emf(capsys.readouterr().out)
    [(_, failures, _)] = _metric(blobs, "RecordFailures")
    assert failures in (1.0, [1.0])
    assert _watches(blobs, "WorkerRecordFailuresAlarm")

    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    with pytest.raises(BatchProcessingError):  # all failed: an invocation error (Errors)
        work([broken, broken])
    [(_, failures, _)] = _metric(_emf(capsys.readouterr().out), "RecordFailures")
    assert failures in (2.0, [2.0])


def test_the_sweeper_counts_what_it_expired(aws, capsys):
    from kernel.aws import config, sweeper

    status, order = checkout(ready_cart(), method="bank-transfer")
    assert status == 201 and order["status"] == "pending_payment", order
    capsys.readouterr()
    sweeper.handler({}, Context())
    assert _emf(capsys.readouterr().out) == []  # nothing to do, nothing flushed
    window_h = load_markets(demo_markets_path())["ID"].payment_window_hours
    config.shared_niaga().clock = lambda: time.time() + window_h * 3600 + 60
    assert sweeper.handler({}, Context())["orders_expired"] == 1
    [(dims, value, blob)] = _metric(_emf(capsys.readouterr().out), "OrdersExpired")
    assert (dims, value, blob["service"]) in (([["service"]], 1.0, "niaga-sweeper"),
                                              ([["service"]], [1.0], "niaga-sweeper"))


def test_a_changed_markets_parameter_reaches_new_containers_not_warm_ones(aws):
    """What docs/operating-aws.md says: the kernel is built once per container, so a warm
    container keeps the markets it read; a new container (here: config.reset()) reads the
    parameter again."""
    import boto3

    from kernel.aws import api

    status, markets = call("GET", "/markets")
    assert status == 200 and "JP" in {m["code"] for m in markets}, markets
    text = demo_markets_path().read_text(encoding="utf-8")
    without_jp = text.split("# --- Japan")[0]
    boto3.client("ssm").put_parameter(Name=MARKETS_PARAM, Value=without_jp, Type="String",
                                      Tier="Advanced", Overwrite=True)
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # even with Powertools' cache expired, the warm kernel stays
    status, markets = call("GET", "/markets")
    assert "JP" in {m["code"] for m in markets}
    api.reset()  # a new container
    status, markets = call("GET", "/markets")
    assert status == 200 and {m["code"] for m in markets} == {"ID", "DE", "US"}, markets


def test_plugin_secrets_come_from_securestring_parameters(aws, monkeypatch):
    import boto3

    from kernel.aws import config
    from kernel.errors import ConfigError

    prefix = "/niaga/test/secrets/"
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=prefix + "NIAGA_TEST_STRIPE_KEY_DE", Type="SecureString",
                      Value="sk_test_from_ssm")
    ssm.put_parameter(Name=prefix + "NIAGA_TEST_OTHER", Type="SecureString", Value="other")
    monkeypatch.setenv("NIAGA_SECRETS_PREFIX", prefix)
    monkeypatch.setenv("NIAGA_SECRETS", "NIAGA_TEST_STRIPE_KEY_DE, NIAGA_TEST_OTHER")
    monkeypatch.delenv("NIAGA_TEST_STRIPE_KEY_DE", raising=False)
    monkeypatch.setenv("NIAGA_TEST_OTHER", "from-the-environment")

    # a market whose stripe plugin names the variable: the kernel builds only with it set
    text = demo_markets_path().read_text(encoding="utf-8") + (
        '\n[markets.DE.plugins.stripe]\napi_key_env = "NIAGA_TEST_STRIPE_KEY_DE"\n')
    ssm.put_parameter(Name=MARKETS_PARAM, Value=text, Type="String", Tier="Advanced",
                      Overwrite=True)
    config.reset()
    niaga = config.build_niaga()
    assert "stripe" in niaga.plugins_for("DE").names
    assert os.environ["NIAGA_TEST_STRIPE_KEY_DE"] == "sk_test_from_ssm"
    assert os.environ["NIAGA_TEST_OTHER"] == "from-the-environment"  # the environment wins
    monkeypatch.delenv("NIAGA_TEST_STRIPE_KEY_DE")

    env: dict[str, str] = {}
    with pytest.raises(ConfigError, match="no SSM parameter /niaga/test/secrets/MISSING"):
        config.load_secrets(config.Settings.from_env({
            "NIAGA_TABLE": TABLE, "NIAGA_SECRETS": "MISSING",
            "NIAGA_SECRETS_PREFIX": prefix}), env)
    with pytest.raises(ConfigError, match="not an environment variable name"):
        config.load_secrets(config.Settings.from_env({
            "NIAGA_TABLE": TABLE, "NIAGA_SECRETS": "A-B", "NIAGA_SECRETS_PREFIX": prefix}), env)
    assert env == {}
    # none named: no SSM call at all
    assert config.load_secrets(config.Settings.from_env({"NIAGA_TABLE": TABLE}), env) == []


def test_handlers_log_no_personal_data_even_at_debug(aws, capfd, caplog):
    """A checkout with a distinctive email, phone and street, its stream records through the
    worker and a sweep, every logger at DEBUG: none of it reaches stdout, stderr or a log
    record (Powertools writes its JSON lines to stdout)."""
    import io
    import logging

    from kernel.aws import api, sweeper, worker

    caplog.set_level(logging.DEBUG)
    for name, lg in list(logging.root.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger) and lg.level > logging.DEBUG:
            caplog.set_level(logging.DEBUG, logger=name)
    # Powertools' handlers hold the stdout of the moment they were made (another test's
    # capture, perhaps): read what they write here instead
    lines = io.StringIO()
    handlers = [lg.registered_handler for lg in (api.logger, worker.logger, sweeper.logger)]
    streams = [h.setStream(lines) for h in handlers]  # type: ignore[attr-defined]
    for lg in (api.logger, worker.logger, sweeper.logger):
        lg.setLevel("DEBUG")
    try:
        email, phone, street = "wulan.sari@example.org", "+62 811 2223 3344", "Jl. Cempaka 88"
        status, cart = call("POST", "/carts", {"market": "ID", "channel": "web"})
        call("POST", f"/carts/{cart['id']}/lines", {"sku": "BATIK-SHIRT-M", "quantity": 1})
        status, _ = call("PUT", f"/carts/{cart['id']}/address",
                         {**ADDRESS_ID, "email": email, "phone": phone, "line1": street})
        assert status == 200
        status, options = call("GET", f"/carts/{cart['id']}/delivery-options")
        ship = next(o for o in options if o["kind"] == "ship")
        call("PUT", f"/carts/{cart['id']}/delivery", {"option_id": ship["id"]})
        status, order = checkout(cart["id"])
        assert status == 201, order
        status, order = checkout(ready_cart(), method="no-such-method")  # a failure, logged
        assert work(stream_records(aws["ddb"]))["batchItemFailures"] == []
        sweeper.handler({}, Context())
    finally:
        for lg in (api.logger, worker.logger, sweeper.logger):
            lg.setLevel("INFO")
        for h, stream in zip(handlers, streams, strict=True):
            h.setStream(stream)  # type: ignore[attr-defined]
    captured = capfd.readouterr()
    text = (lines.getvalue() + captured.out + captured.err + "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.__dict__}" for r in caplog.records))
    assert '"level":"DEBUG"' in text.replace(" ", "") or caplog.records, "nothing logged"
    assert '"function_request_id"' in text.replace(" ", ""), "no Powertools line was seen"
    personal = [email, "wulan.sari", phone, phone.replace(" ", ""), "81122233344", street,
                "Cempaka"]
    found = [p for p in personal if p.lower() in text.lower()]
    assert not found, f"personal data in the logs: {found}"


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)


def _the_json_line(code: str, env: dict[str, str]) -> dict:
    """What ``code`` logs, run in a fresh Python: it must succeed and print one JSON line."""
    done = _python(code, env)
    assert done.returncode == 0, done.stderr
    [line] = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    return line


def test_on_lambda_the_kernel_logs_through_powertools_as_json():
    code = ("import logging, kernel.aws.worker; "
            "logging.getLogger('niaga.orders').warning('expired %s orders', 2)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_LAMBDA_FUNCTION_NAME="niaga-worker-fn", NIAGA_TABLE=TABLE,
               AWS_DEFAULT_REGION=REGION, POWERTOOLS_LOG_LEVEL="INFO")
    line = _the_json_line(code, env)
    assert (line["level"], line["message"], line["name"], line["service"]) == (
        "WARNING", "expired 2 orders", "niaga.orders", "niaga-worker")
    # in the API function, inside an invocation: the request's correlation id too
    api_code = (
        "import logging\n"
        "from aws_lambda_powertools.logging import correlation_paths\n"
        "from kernel.aws import api\n"
        "@api.logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)\n"
        "def h(e, c): logging.getLogger('niaga.api').error('unhandled error on POST /x')\n"
        "class C:\n"
        "    function_name, function_version, memory_limit_in_mb = 'fn', '1', 1024\n"
        "    invoked_function_arn, aws_request_id = 'arn:aws:lambda:::function:fn', 'r1'\n"
        "h({'requestContext': {'requestId': 'REQ-1'}}, C())\n")
    line = _the_json_line(api_code, env)
    assert (line["name"], line["service"], line["correlation_id"], line["level"]) == (
        "niaga.api", "niaga-api", "REQ-1", "ERROR")
    # off Lambda (tests, --aws-local) the standard logging set-up is left alone
    env.pop("AWS_LAMBDA_FUNCTION_NAME")
    done = _python(code, env)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout
    assert "expired 2 orders" in done.stderr  # logging's last-resort handler


def test_a_redrive_delivers_the_events_the_stream_never_did_once(aws, capsys):
    """docs/operating-aws.md, "A message in the dead-letter queue": the worker invoked with
    {"redrive": ...} delivers undelivered outbox events older than the cut-off."""
    from kernel.aws import worker
    from kernel.aws.config import shared_niaga

    status, order = checkout(ready_cart())
    assert status == 201, order
    events = outbox(stream_records(aws["ddb"]))  # never given to the worker: "lost"
    assert worker.handler({"redrive": {}}, Context()) == {
        "redelivered": 0, "left_recent": len(events)}  # younger than 15 minutes: left
    assert published(aws) == []
    capsys.readouterr()
    assert worker.handler({"redrive": {"older_than_s": 0}}, Context()) == {
        "redelivered": len(events), "left_recent": 0}
    assert sorted(m["detail-type"] for m in published(aws)) == sorted(
        r["dynamodb"]["NewImage"]["ty"]["S"] for r in events)
    assert asyncio.run(shared_niaga().store.pending_events()) == []
    [(_, delivered, _)] = _metric(_emf(capsys.readouterr().out), "EventsDelivered")
    assert sum(delivered if isinstance(delivered, list) else [delivered]) == len(events)
    # again: nothing left; and the stream's late records now find them delivered
    assert worker.handler({"redrive": {"older_than_s": 0}}, Context())["redelivered"] == 0
    assert work(events) == {"batchItemFailures": []}
    assert published(aws) == []
