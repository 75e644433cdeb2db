"""DynamoDB adapter specifics the storage contract suite does not see (moto, in-process).

The contract suite (tests/contract) runs on DynamoDB too; these check the table shape,
the item sizes that capacity depends on, and the 100-action limit.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("moto")

from kernel.errors import Conflict
from kernel.ids import new_id
from kernel.inventory import Reservation
from kernel.store.dynamodb import MAX_ACTIONS, DynamoStore, _pack


@pytest.fixture
async def dynamo() -> AsyncIterator[DynamoStore]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-central-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        store = DynamoStore("niaga-unit", client=client)
        await store.create_schema()
        yield store


def test_importing_the_adapter_does_not_import_boto3() -> None:
    code = "import sys, kernel.store.dynamodb; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_from_url_reads_table_region_and_endpoint() -> None:
    store = DynamoStore.from_url("dynamodb://shop?region=ap-southeast-3"
                                 "&endpoint=http://127.0.0.1:5000")
    assert (store.table_name, store._region, store._endpoint) == (
        "shop", "ap-southeast-3", "http://127.0.0.1:5000")


async def test_create_schema_makes_the_table_once(dynamo: DynamoStore) -> None:
    await dynamo.create_schema()  # already there: nothing to do
    table = dynamo.client.describe_table(TableName="niaga-unit")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {"StreamEnabled": True,
                                            "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert {g["IndexName"] for g in table["GlobalSecondaryIndexes"]} == {
        "gsi1", "gsi2", "gsi3", "gsi4", "gsi5"}
    ttl = dynamo.client.describe_time_to_live(TableName="niaga-unit")
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"


def test_a_three_line_cart_fits_one_write_unit() -> None:
    from kernel.cart import Address, Line, empty_cart
    from kernel.money import Money

    cart = empty_cart(new_id(), "DE", "web", "EUR", include_tax=True, customer_id=new_id(),
                      now=1_700_000_000.0)
    for sku in ("SKU-A", "SKU-B", "SKU-C"):
        price = Money(1990, "EUR")
        cart.lines.append(Line(id=new_id(), sku=sku, name=f"Produkt {sku} – Größe M",
                               quantity=2, unit_price=price, subtotal=price, discount=price,
                               tax=price, total=price))
    cart.address = Address(country="DE", city="Berlin", postal_code="10115",
                           line1="Invalidenstraße 1", name="Erika Mustermann",
                           email="erika@example.com", phone="+49 30 123456")
    assert len(_pack(cart)["B"]) < 1024


async def test_a_reservation_over_the_action_limit_is_refused_and_holds_nothing(
        dynamo: DynamoStore) -> None:
    order_id = new_id()
    rows = []
    for i in range(MAX_ACTIONS):
        await dynamo.set_stock(f"SKU-{i:03}", "wh", 1, "count", 0.0)
        rows.append(Reservation(order_id=order_id, sku=f"SKU-{i:03}", location_id="wh",
                                quantity=1, expires_at=900.0))
    with pytest.raises(Conflict, match="too large for one atomic write"):
        await dynamo.reserve(rows, "DE", [])
    stock = await dynamo.get_stock([r.sku for r in rows])
    assert {level.reserved for level in stock.values()} == {0}


async def test_delivered_events_leave_the_pending_index_and_expire(
        dynamo: DynamoStore) -> None:
    from kernel.events import Event

    event = Event(id=new_id(), type="order.placed", market="DE", subject="o1", at=10.0)
    dynamo._transact([dynamo._event_put(event)])
    assert await dynamo.pending_events() == [event]
    await dynamo.mark_events_delivered([event.id], 20.0)
    assert await dynamo.pending_events() == []
    item = dynamo._get(f"EV#{event.id}", "EV")
    assert int(item["ttl"]["N"]) > 20
