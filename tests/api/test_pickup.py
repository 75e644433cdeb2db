"""Click and collect: ready-for-pickup and picked-up, their history, events and stock."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import assert_order, assert_problem, niaga_of, place_order

SKU, GI, WH = "TOTE-CANVAS", "id-jkt-store-gi", "id-jkt-wh"
PICKUP_GI = f"store-pickup:{GI}"


@pytest.fixture
def seen(client) -> list[Any]:
    """Every event the outbox relay delivers from now on (in-process on every store)."""
    niaga = niaga_of(client)
    delivered: list[Any] = []
    deliver = niaga.dispatcher.deliver

    async def spy(event):
        delivered.append(event)
        await deliver(event)

    niaga.dispatcher.deliver = spy
    return delivered


def _events(client, seen: list[Any], order_id: str) -> list[str]:
    client.blocking_portal.call(niaga_of(client).dispatcher.drain)
    return [e.type for e in seen if e.subject == order_id]


def _level(client, admin, loc: str) -> tuple[int, int]:
    levels = {lv["location_id"]: lv for lv in
              client.get(f"/admin/inventory/{SKU}", headers=admin).json()}
    return levels[loc]["on_hand"], levels[loc]["reserved"]


def _stocked(client, admin, on_hand: int = 5) -> None:
    r = client.put(f"/admin/inventory/{SKU}/{GI}", json={"on_hand": on_hand}, headers=admin)
    assert r.status_code == 200, r.text


def _post(client, admin, order_id: str, step: str):
    return client.post(f"/admin/orders/{order_id}/{step}", headers=admin)


def test_ready_then_picked_up(client, admin_headers, seen):
    _stocked(client, admin_headers, 5)
    order = place_order(client, "ID", {SKU: 2}, delivery="pickup", option_id=PICKUP_GI)
    assert _level(client, admin_headers, GI) == (5, 2)

    r = _post(client, admin_headers, order["id"], "ready-for-pickup")
    assert r.status_code == 200, r.text
    ready = assert_order(r.json())
    assert ready["status"] == "paid"  # a step in the history, not a status
    assert ready["history"][-1]["event"] == "ready_for_pickup"
    assert ready["history"][-1]["detail"]["location_id"] == GI
    assert len(ready["history"]) == len(order["history"]) + 1
    # staff tap twice: nothing new
    again = _post(client, admin_headers, order["id"], "ready-for-pickup")
    assert again.status_code == 200
    assert again.json()["history"] == ready["history"]

    r = _post(client, admin_headers, order["id"], "picked-up")
    assert r.status_code == 200, r.text
    done = assert_order(r.json())
    assert done["status"] == "fulfilled"
    assert [li["fulfilled"] for li in done["lines"]] == [2]
    (f,) = done["fulfillments"]
    assert f["location_id"] == GI
    assert f["lines"] == [{"line_id": order["lines"][0]["id"], "quantity": 2}]
    assert f["tracking_number"].startswith("PU-")  # the pickup code of store-pickup
    step = done["history"][-1]
    assert (step["event"], step["detail"]["from"], step["detail"]["to"]) == (
        "picked_up", "paid", "fulfilled")
    assert step["detail"]["fulfillment"] == f["id"]
    assert _level(client, admin_headers, GI) == (5 - 2, 0)  # left the store's shelf

    # once picked up, again is a no-op; ready is one too
    assert _post(client, admin_headers, order["id"], "picked-up").json() == done
    assert _post(client, admin_headers, order["id"], "ready-for-pickup").json() == done
    events = _events(client, seen, order["id"])
    for kind in ("order.ready_for_pickup", "order.fulfilled", "order.picked_up"):
        assert events.count(kind) == 1, events
    assert events.index("order.ready_for_pickup") < events.index("order.picked_up")


def test_picked_up_at_the_counter_without_a_ready_step(client, admin_headers, seen):
    _stocked(client, admin_headers, 3)
    order = place_order(client, "ID", {SKU: 1}, delivery="pickup", option_id=PICKUP_GI,
                        channel="pos")
    r = _post(client, admin_headers, order["id"], "picked-up")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "fulfilled"
    assert _level(client, admin_headers, GI) == (2, 0)
    events = _events(client, seen, order["id"])
    assert "order.picked_up" in events and "order.ready_for_pickup" not in events


def test_picked_up_hands_over_what_a_partial_fulfilment_left(client, admin_headers):
    _stocked(client, admin_headers, 4)
    order = place_order(client, "ID", {SKU: 3}, delivery="pickup", option_id=PICKUP_GI)
    line_id = order["lines"][0]["id"]
    r = client.post(f"/admin/orders/{order['id']}/fulfillments",
                    json={"lines": [{"line_id": line_id, "quantity": 1}]}, headers=admin_headers)
    assert r.json()["status"] == "partially_fulfilled"
    r = _post(client, admin_headers, order["id"], "picked-up")
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "fulfilled"
    assert [f["lines"][0]["quantity"] for f in done["fulfillments"]] == [1, 2]
    assert _level(client, admin_headers, GI) == (4 - 3, 0)


def test_a_ship_order_has_no_pickup_steps(client, admin_headers, seen):
    order = place_order(client, "ID", {SKU: 1})
    before = client.get(f"/orders/{order['id']}").json()
    for step in ("ready-for-pickup", "picked-up"):
        body = assert_problem(_post(client, admin_headers, order["id"], step), 409)
        assert "not a pickup order" in body["detail"]
    assert client.get(f"/orders/{order['id']}").json() == before
    events = _events(client, seen, order["id"])
    assert "order.ready_for_pickup" not in events and "order.picked_up" not in events


def test_unpaid_cancelled_and_unknown_orders_are_refused(client, admin_headers):
    _stocked(client, admin_headers, 5)
    unpaid = place_order(client, "ID", {SKU: 1}, method="bank-transfer", delivery="pickup",
                         option_id=PICKUP_GI)
    for step in ("ready-for-pickup", "picked-up"):
        assert_problem(_post(client, admin_headers, unpaid["id"], step), 409)
    assert client.get(f"/orders/{unpaid['id']}").json()["history"] == unpaid["history"]
    assert _level(client, admin_headers, GI) == (5, 1)

    paid = place_order(client, "ID", {SKU: 1}, delivery="pickup", option_id=PICKUP_GI)
    assert _post(client, admin_headers, paid["id"], "ready-for-pickup").status_code == 200
    r = client.post(f"/admin/orders/{paid['id']}/cancel", json={}, headers=admin_headers)
    assert r.json()["status"] == "cancelled"
    for step in ("ready-for-pickup", "picked-up"):
        assert_problem(_post(client, admin_headers, paid["id"], step), 409)
    for step in ("ready-for-pickup", "picked-up"):
        assert_problem(_post(client, admin_headers, "no-such-order", step), 404)
        assert client.post(f"/admin/orders/{paid['id']}/{step}").status_code == 401


def test_units_held_away_from_the_pickup_store_are_not_handed_over(client, admin_headers):
    """An allocation plugin may hold a pickup order's units elsewhere (a transfer to come):
    neither step pretends they are on the store's shelf."""
    from kernel.orders import Allocated

    _stocked(client, admin_headers, 5)
    order = place_order(client, "ID", {SKU: 1}, delivery="pickup", option_id=PICKUP_GI)
    niaga = niaga_of(client)

    async def elsewhere() -> None:
        stored = await niaga.store.get_order(order["id"])
        version = stored.version
        stored.allocations = [Allocated(sku=SKU, location_id=WH, quantity=1)]
        stored.version += 1
        await niaga.store.save_order(stored, version, [])

    client.blocking_portal.call(elsewhere)
    before = client.get(f"/orders/{order['id']}").json()
    for step in ("ready-for-pickup", "picked-up"):
        body = assert_problem(_post(client, admin_headers, order["id"], step), 409)
        assert SKU in body["detail"] and WH in body["detail"]
    assert client.get(f"/orders/{order['id']}").json() == before
