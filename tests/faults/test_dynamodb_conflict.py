"""Fault: DynamoDB cancels a transaction on a conflict (TransactionCanceledException with a
TransactionConflict reason). Injected at the botocore client of the real app's store on moto
(a ``before-call`` handler answers in DynamoDB's place): the store retries with jittered
backoff, then answers a 409 problem+json ``busy`` with Retry-After, and nothing is half
written: no stock held, no order, no payment left standing."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from litestar.testing import TestClient

from kernel.store import dynamodb
from plugins.payments.testpay import TestPay
from tests.api.helpers import (
    assert_problem,
    availability,
    checkout,
    minor,
    niaga_of,
    ready_cart,
)
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.dynamodb
SKUS = {"BATIK-SHIRT-M": 2, "COBEK-STONE": 1}


class Canceller:
    """Cancels the next ``times`` TransactWriteItems whose items include a key starting
    with ``prefix``, as DynamoDB does when another request touches an item meanwhile."""

    def __init__(self, prefix: str, times: int):
        self.prefix, self.left, self.at = prefix, times, []

    def __call__(self, params: dict[str, Any], **_: Any) -> Any:
        items = json.loads(params["body"])["TransactItems"]
        keys = [next(iter(i.values())).get("Item", next(iter(i.values())).get("Key", {}))
                for i in items]
        if self.left == 0 or not any(k.get("pk", {}).get("S", "").startswith(self.prefix)
                                     for k in keys):
            return None
        self.left -= 1
        self.at.append(time.monotonic())
        reasons = [{"Code": "None"} for _ in items]
        reasons[-1] = {"Code": "TransactionConflict",
                       "Message": "Transaction is ongoing for the item"}
        parsed = {"Error": {"Code": "TransactionCanceledException",
                            "Message": "Transaction cancelled, please refer cancellation "
                                       "reasons for specific reasons"},
                  "CancellationReasons": reasons,
                  "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://dynamodb.local", 400, {}, None), parsed


@pytest.fixture
def client(aws_mock, markets, open_store) -> Iterator[TestClient]:
    from kernel.api.app import create_app
    from kernel.demo import seed
    from kernel.runtime import Niaga

    url = f"dynamodb://niaga-faults-{uuid.uuid4().hex[:8]}"

    async def prepare() -> None:
        store = open_store(url)
        await store.create_schema()
        await seed(store, markets, 0.0)

    asyncio.run(prepare())
    with TestClient(create_app(Niaga(open_store(url), markets),
                               admin_token=ADMIN_TOKEN)) as c:
        yield c


def _inject(client: TestClient, canceller: Canceller) -> None:
    events = niaga_of(client).store.client.meta.events
    events.register("before-call.dynamodb.TransactWriteItems", canceller)


def _available(client: TestClient) -> dict[str, int]:
    return {sku: availability(client, sku, "ID")["available"] for sku in SKUS}


def test_a_passing_conflict_is_retried_and_the_checkout_goes_through(client):
    cart = ready_cart(client, "ID", SKUS)
    before = _available(client)
    canceller = Canceller("R#", times=2)  # the reservation's transaction, twice
    _inject(client, canceller)
    r = checkout(client, cart["id"])
    assert r.status_code == 201, r.text
    assert len(canceller.at) == 2 and canceller.left == 0
    assert _available(client) == {sku: before[sku] - q for sku, q in SKUS.items()}


def test_a_lasting_conflict_at_reserve_is_a_409_after_backed_off_retries(client):
    cart = ready_cart(client, "ID", SKUS)
    before = _available(client)
    canceller = Canceller("R#", times=dynamodb.CONFLICT_ATTEMPTS)
    _inject(client, canceller)
    r = checkout(client, cart["id"], key="k-busy")
    body = assert_problem(r, 409)
    assert body["code"] == "busy" and int(r.headers["retry-after"]) >= 1
    # every attempt made, each wait at least half its doubling step (the jitter's floor)
    assert len(canceller.at) == dynamodb.CONFLICT_ATTEMPTS
    gaps = [b - a for a, b in zip(canceller.at, canceller.at[1:], strict=False)]
    for attempt, gap in enumerate(gaps):
        assert gap >= 0.5 * dynamodb.CONFLICT_BACKOFF_S * 2 ** attempt, gaps
    assert gaps[-1] > gaps[0]
    # nothing written: no hold, no payment, the cart still open
    assert _available(client) == before
    assert TestPay.calls == []
    assert client.get(f"/carts/{cart['id']}").json()["status"] == "open"
    # busy is not a final answer: the same key goes through once the conflict passed
    r = checkout(client, cart["id"], key="k-busy")
    assert r.status_code == 201, r.text


def test_a_lasting_conflict_placing_the_order_undoes_payment_and_hold(client):
    cart = ready_cart(client, "ID", SKUS)
    before = _available(client)
    canceller = Canceller("O#", times=dynamodb.CONFLICT_ATTEMPTS)  # place_order's write
    _inject(client, canceller)
    r = checkout(client, cart["id"], key="k-place")
    assert_problem(r, 409)
    assert len(canceller.at) == dynamodb.CONFLICT_ATTEMPTS
    [auth] = TestPay.calls_of("authorize")
    undone = TestPay.calls_of("void") + TestPay.calls_of("refund")
    assert [(u[1], u[2]) for u in undone] == [(auth[1], minor(cart["total"]))]
    assert _available(client) == before
    assert client.get(f"/carts/{cart['id']}").json()["status"] == "open"
    # that key's payment is undone at the gateway: a retry with it gets the same answer
    # and never an order standing on the voided payment
    again = checkout(client, cart["id"], key="k-place")
    assert_problem(again, 409)
    assert client.get(f"/carts/{cart['id']}").json()["status"] == "open"
    fresh = checkout(client, cart["id"], key="k-place-2")
    assert fresh.status_code == 201, fresh.text
    assert fresh.json()["payment"]["reference"] != auth[1]
