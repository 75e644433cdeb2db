"""Fault: a gateway delivers the same webhook twice at the same moment. Sequential
duplicates are covered in tests/api/test_webhooks.py; here both copies race through the
real app (one event loop, interleaving at every store call): the order is paid once (its
``order.paid`` event is written in the same atomic write as the one ``paid`` history entry),
and the sender gets a 2xx for each copy."""

from __future__ import annotations

import asyncio
import json

import pytest
from litestar.testing import AsyncTestClient, TestClient

from kernel.api.app import create_app
from kernel.runtime import Niaga
from plugins.payments.testpay import TestPay
from tests.api.helpers import minor, place_order
from tests.conftest import ADMIN_TOKEN, open_store


@pytest.mark.parametrize("copies", [2, 5])
async def test_identical_webhooks_at_the_same_moment_apply_once(seeded_url, markets, copies):
    with TestClient(create_app(Niaga(open_store(seeded_url), markets),
                               admin_token=ADMIN_TOKEN)) as sync:
        order = place_order(sync, "ID", {"SARONG-TENUN": 1}, token="tok_pending")
    assert order["status"] == "pending_payment"
    body = json.dumps({"id": "evt_dup", "type": "payment.captured", "order_id": order["id"],
                       "amount": order["total"]["amount"]}).encode()
    headers = {"Content-Type": "application/json", "Testpay-Signature": TestPay.sign(body)}

    app = create_app(Niaga(open_store(seeded_url), markets), admin_token=ADMIN_TOKEN)
    async with AsyncTestClient(app) as client:
        answers = await asyncio.gather(*[client.post("/webhooks/testpay", content=body,
                                                     headers=headers)
                                         for _ in range(copies)])
        assert all(200 <= r.status_code < 300 for r in answers), [r.text for r in answers]
        assert sum(r.json().get("applied") is True for r in answers) == 1
        paid = (await client.get(f"/orders/{order['id']}")).json()
    assert paid["status"] == "paid"
    assert minor(paid["payment"]["captured"]) == minor(order["total"])
    assert [h["event"] for h in paid["history"]].count("paid") == 1
    assert len(paid["history"]) == len(order["history"]) + 1
