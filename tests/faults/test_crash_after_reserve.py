"""Fault: the process dies between reserving stock and placing the order. A real
``niaga serve`` (tests/faults/crash_serve.py: the CLI with a crash point at the payment
call, the step right after the reservation) is SIGKILLed there. Then nothing is lost:
the hold is on the books, no order and no payment exist; a retry with the same
Idempotency-Key cleanly fails (409 ``in_progress``, nothing charged) while the hold lives;
the sweeper releases it once its window passed; the retry then places the order, charged
once, and the stock adds up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient

from kernel.api.app import create_app
from kernel.runtime import Niaga
from kernel.services.orders import sweep
from plugins.payments.testpay import TestPay
from tests.api.helpers import assert_problem, availability, minor, ready_cart
from tests.conftest import ADMIN_TOKEN, open_store
from tests.serving import free_port, wait_up

SERVER = Path(__file__).with_name("crash_serve.py")
SKUS = {"BATIK-SHIRT-M": 2, "COBEK-STONE": 1}
BODY = {"payment": {"method": "testpay", "token": "tok_ok"}}
KEY = {"Idempotency-Key": "k-crash"}


async def _sweep(url: str, markets, shift: float) -> dict[str, int]:
    """The sweeper as another process runs it, ``shift`` seconds in the future."""
    ctx = Niaga(open_store(url), markets)
    ctx.clock = lambda: time.time() + shift
    await ctx.start()
    try:
        return await sweep(ctx)
    finally:
        await ctx.close()


def test_a_checkout_killed_after_reserving_is_finished_by_sweeper_and_retry(
        seeded_url, markets, tmp_path):
    if seeded_url.startswith("dynamodb://"):
        pytest.skip("moto lives in this process; a server process cannot share it "
                    "(DynamoDB's crash path: tests/aws/test_handlers.py, TTL release)")
    port, marker = free_port(), tmp_path / "reserved"
    env = {**os.environ, "NIAGA_ADMIN_TOKEN": ADMIN_TOKEN, "NIAGA_CRASH_MARKER": str(marker)}
    proc = subprocess.Popen([sys.executable, str(SERVER), "serve", "--db", seeded_url,
                             "--port", str(port), "--no-demo"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base, proc, timeout_s=30)
        with httpx.Client(base_url=base, timeout=10) as server:
            cart = ready_cart(server, "ID", SKUS)
            before = {sku: availability(server, sku, "ID")["available"] for sku in SKUS}
            hanging = threading.Thread(target=lambda: _quietly(
                server.post, f"/carts/{cart['id']}/checkout", json=BODY, headers=KEY))
            hanging.start()
            deadline = time.monotonic() + 15
            while not marker.exists():
                assert time.monotonic() < deadline, "the checkout never reserved"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)  # dies holding the stock, before the payment
            proc.wait(10)
            hanging.join(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    held = {sku: before[sku] - q for sku, q in SKUS.items()}
    with TestClient(create_app(Niaga(open_store(seeded_url), markets),
                               admin_token=ADMIN_TOKEN)) as client:
        # what the dead process left: a hold, an open cart, no order, no payment
        assert {sku: availability(client, sku, "ID")["available"] for sku in SKUS} == held
        assert client.get(f"/carts/{cart['id']}").json()["status"] == "open"
        # the same key while the hold lives: a clean 409, nothing charged or placed
        r = client.post(f"/carts/{cart['id']}/checkout", json=BODY, headers=KEY)
        assert assert_problem(r, 409)["code"] == "in_progress"
        assert TestPay.calls == []
        assert client.get(f"/carts/{cart['id']}").json()["status"] == "open"

        # the sweeper leaves a hold within its window alone, then releases it
        assert asyncio.run(_sweep(seeded_url, markets, 0))["units_released"] == 0
        window = markets["ID"].reservation_minutes * 60
        released = asyncio.run(_sweep(seeded_url, markets, window + 60))
        assert released["units_released"] == sum(SKUS.values())
        assert {sku: availability(client, sku, "ID")["available"] for sku in SKUS} == before

        # the retry with the same key now places the order, charged exactly once
        r = client.post(f"/carts/{cart['id']}/checkout", json=BODY, headers=KEY)
        assert r.status_code == 201, r.text
        order = r.json()
        [auth] = TestPay.calls_of("authorize")
        assert auth[1] == order["payment"]["reference"]
        assert auth[2] == minor(order["total"]) == minor(cart["total"])
        assert order["status"] == "paid"
        assert {sku: availability(client, sku, "ID")["available"] for sku in SKUS} == held
        assert asyncio.run(_sweep(seeded_url, markets, window + 60))["units_released"] == 0


def _quietly(call, *args, **kwargs) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server was killed under it
        call(*args, **kwargs)
