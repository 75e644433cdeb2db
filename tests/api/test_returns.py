"""Returns per line: restock or write-off, where the units come back, points reversed.

Expected refunds come from the order's line totals (pro rata per unit), expected points
from the points plugin's settings in the demo markets file.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from kernel.money import allocate
from kernel.services import loyalty, returns
from plugins.payments.testpay import TestPay

from .helpers import (
    DIGITS,
    assert_order,
    assert_problem,
    idem,
    markets_toml,
    minor,
    niaga_of,
    place_order,
    stock_level,
)

WH = "id-jkt-wh"
GI = "id-jkt-store-gi"
PVJ = "id-bdg-store-pvj"


def _post(client, path, admin, json=None, key=None):
    headers = {**admin, **(idem(key) if key else {})}
    return client.post(path, json=json, headers=headers)


def _fulfil(client, admin, order_id, body=None):
    r = _post(client, f"/admin/orders/{order_id}/fulfillments", admin, body or {})
    assert r.status_code == 200, r.text
    return r.json()


def _unit_refunds(line: dict, start: int, count: int) -> int:
    """What units start..start+count of a line refund: its total split per unit."""
    return sum(allocate(minor(line["total"]), [1] * line["quantity"])[start:start + count])


def _on_hand(client, admin, sku, location):
    return stock_level(client, admin, sku, location)["on_hand"]


def _settle(client):
    client.blocking_portal.call(niaga_of(client).dispatcher.drain)


def test_each_line_restocks_where_it_came_back_or_is_written_off(client, admin_headers,
                                                                  monkeypatch):
    seen = []
    original = loyalty.on_event

    async def spy(ctx, event):
        seen.append(event)
        return await original(ctx, event)

    monkeypatch.setattr(loyalty, "on_event", spy)
    order = place_order(client, "ID", {"TEA-JAVA-BLACK": 3, "COFFEE-GAYO-250": 2})
    oid = order["id"]
    lines = {li["sku"]: li for li in order["lines"]}
    tea, coffee = lines["TEA-JAVA-BLACK"], lines["COFFEE-GAYO-250"]
    shipped = _fulfil(client, admin_headers, oid)
    [where] = {f["location_id"] for f in shipped["fulfillments"]}
    before = {(sku, loc): _on_hand(client, admin_headers, sku, loc)
              for sku in lines for loc in (where, GI)}

    body = {"restock": True, "lines": [
        {"line_id": tea["id"], "quantity": 1, "location_id": GI},  # came back at a store
        {"line_id": tea["id"], "quantity": 1, "restock": False},  # damaged: written off
        {"line_id": coffee["id"], "quantity": 1},  # the request's default: restock
    ]}
    r = _post(client, f"/admin/orders/{oid}/returns", admin_headers, body, key="ret-1")
    assert r.status_code == 200, r.text
    done = assert_order(r.json())
    assert done["status"] == "partially_returned"
    expected = _unit_refunds(tea, 0, 2) + _unit_refunds(coffee, 0, 1)
    assert minor(done["payment"]["refunded"]) == expected
    assert {li["sku"]: li["returned"] for li in done["lines"]} == {
        "TEA-JAVA-BLACK": 2, "COFFEE-GAYO-250": 1}
    after = {k: _on_hand(client, admin_headers, *k) for k in before}
    assert after == {**before, ("TEA-JAVA-BLACK", GI): before[("TEA-JAVA-BLACK", GI)] + 1,
                     ("COFFEE-GAYO-250", where): before[("COFFEE-GAYO-250", where)] + 1}

    entry = done["history"][-1]
    assert entry["event"] == "returned"
    restocked = {(x["sku"], x["location_id"], x["quantity"]) for x in entry["detail"]["restocked"]}
    assert restocked == {("TEA-JAVA-BLACK", GI, 1), ("COFFEE-GAYO-250", where, 1)}
    assert [(x["sku"], x["quantity"]) for x in entry["detail"]["written_off"]] == [
        ("TEA-JAVA-BLACK", 1)]
    _settle(client)
    [event] = [e for e in seen if e.type == "order.returned" and e.subject == oid]
    assert event.data["written_off"] == entry["detail"]["written_off"]
    assert event.data["restocked"] == entry["detail"]["restocked"]
    assert minor({"amount": event.data["refund"], "currency": "IDR"}) == expected

    # the replay changes nothing: no second refund, no second restock
    r = _post(client, f"/admin/orders/{oid}/returns", admin_headers, body, key="ret-1")
    assert r.json() == done
    assert len(TestPay.calls_of("refund")) == 1
    assert {k: _on_hand(client, admin_headers, *k) for k in before} == after


def test_a_return_location_must_serve_the_market_and_bad_lines_change_nothing(
        client, admin_headers):
    order = place_order(client, "ID", {"TEA-JAVA-BLACK": 2})
    oid = order["id"]
    tea = order["lines"][0]
    shipped = _fulfil(client, admin_headers, oid)
    path = f"/admin/orders/{oid}/returns"
    german = next(loc["id"] for loc in _locations() if "ID" not in loc["markets"])
    bad = [
        ({"lines": [{"line_id": tea["id"], "quantity": 1}, {"line_id": tea["id"], "quantity": 1,
                                                            "location_id": german}]},
         "lines[1].location_id"),
        ({"lines": [{"line_id": tea["id"], "quantity": 1, "location_id": "nowhere"}]},
         "lines[0].location_id"),
        ({"lines": [{"line_id": "no-such-line", "quantity": 1}]}, "lines[0].line_id"),
        ({"lines": [{"line_id": tea["id"], "quantity": 3}]}, "lines[0].quantity"),
        ({"lines": [{"line_id": tea["id"], "quantity": 1, "restock": "yes"}]},
         "lines[0].restock"),
    ]
    for i, (body, field) in enumerate(bad):
        assert_problem(_post(client, path, admin_headers, body, key=f"bad-{i}"), (400, 422),
                       field)
    assert client.get(f"/orders/{oid}").json() == shipped
    assert TestPay.calls_of("refund") == []


def _locations():
    from .helpers import catalog_toml

    return catalog_toml()["locations"]


def test_units_go_back_to_the_locations_that_shipped_them_first_shipment_first(
        client, admin_headers):
    # stock split so the order ships from two places: 1 from the warehouse, 2 from a store
    for loc, qty in ((WH, 1), (PVJ, 2), (GI, 0), ("id-jkt-store-kokas", 0)):
        r = client.put(f"/admin/inventory/TEA-JAVA-BLACK/{loc}", json={"on_hand": qty},
                       headers=admin_headers)
        assert r.status_code == 200, r.text
    order = place_order(client, "ID", {"TEA-JAVA-BLACK": 3})
    oid, tea = order["id"], order["lines"][0]
    _fulfil(client, admin_headers, oid, {"lines": [{"line_id": tea["id"], "quantity": 1}],
                                         "location_id": WH})
    shipped = _fulfil(client, admin_headers, oid)
    assert [f["location_id"] for f in shipped["fulfillments"]] == [WH, PVJ]
    assert (_on_hand(client, admin_headers, "TEA-JAVA-BLACK", WH),
            _on_hand(client, admin_headers, "TEA-JAVA-BLACK", PVJ)) == (0, 0)

    path = f"/admin/orders/{oid}/returns"
    r = _post(client, path, admin_headers,
              {"lines": [{"line_id": tea["id"], "quantity": 2}]}, key="r1")
    assert r.status_code == 200, r.text
    assert (_on_hand(client, admin_headers, "TEA-JAVA-BLACK", WH),
            _on_hand(client, admin_headers, "TEA-JAVA-BLACK", PVJ)) == (1, 1)
    r = _post(client, path, admin_headers,
              {"lines": [{"line_id": tea["id"], "quantity": 1}]}, key="r2")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "returned"
    assert (_on_hand(client, admin_headers, "TEA-JAVA-BLACK", WH),
            _on_hand(client, admin_headers, "TEA-JAVA-BLACK", PVJ)) == (1, 2)


def test_a_store_that_never_stocked_the_sku_gets_the_returned_unit(client, admin_headers):
    # the product is sold in ID but the store has no stock row for it yet
    r = client.put("/admin/products/RATTAN-TRAY", headers=admin_headers, json={
        "names": {"en-US": "Rattan Tray"}, "prices": {"ID": {"amount": "150000.00",
                                                              "currency": "IDR"}}})
    assert r.status_code == 200, r.text
    r = client.put(f"/admin/inventory/RATTAN-TRAY/{WH}", json={"on_hand": 5},
                   headers=admin_headers)
    assert r.status_code == 200, r.text
    order = place_order(client, "ID", {"RATTAN-TRAY": 1})
    _fulfil(client, admin_headers, order["id"])
    r = _post(client, f"/admin/orders/{order['id']}/returns", admin_headers,
              {"lines": [{"line_id": order["lines"][0]["id"], "quantity": 1,
                          "location_id": GI}]}, key="r")
    assert r.status_code == 200, r.text
    assert _on_hand(client, admin_headers, "RATTAN-TRAY", GI) == 1
    assert _on_hand(client, admin_headers, "RATTAN-TRAY", WH) == 4


# -- points --------------------------------------------------------------------------


def _customer(client, admin_headers, email):
    r = client.post("/admin/customers", json={"email": email}, headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    c = r.json()
    return c, {"Authorization": f"Bearer {c['token']}"}


def _balance(client, auth):
    _settle(client)
    r = client.get("/me", headers=auth)
    assert r.status_code == 200, r.text
    return r.json()["loyalty"]["balance"]


def _earned(order) -> int:
    settings = markets_toml()[order["market"]]["plugins"]["points"]
    paid = minor(order["total"]) - minor(order["shipping_total"])
    value = Decimal(paid).scaleb(-DIGITS[order["currency"]]) * Decimal(settings["earn_per_unit"])
    return int(value.to_integral_value(ROUND_FLOOR))  # the first tier's multiplier is 1


def test_returning_one_of_two_lines_reverses_its_points_in_the_order_history(
        client, admin_headers):
    _, auth = _customer(client, admin_headers, "retur@example.com")
    order = place_order(client, "DE", {"SANDAL-LEATHER-42": 1, "TEA-JAVA-BLACK": 2},
                        headers=auth)
    earned = _earned(order)
    assert earned > 0 and _balance(client, auth) == earned
    _fulfil(client, admin_headers, order["id"])
    tea = next(li for li in order["lines"] if li["sku"] == "TEA-JAVA-BLACK")
    body = {"lines": [{"line_id": tea["id"], "quantity": tea["quantity"]}], "restock": True}
    path = f"/admin/orders/{order['id']}/returns"
    r = _post(client, path, admin_headers, body, key="pts-1")
    assert r.status_code == 200, r.text
    first = r.json()
    assert minor(first["payment"]["refunded"]) == minor(tea["total"])
    goods = minor(order["total"]) - minor(order["shipping_total"])
    taken = earned * minor(tea["total"]) // goods
    assert taken > 0
    assert _balance(client, auth) == earned - taken

    history = client.get(f"/orders/{order['id']}").json()["history"]
    [note] = [h for h in history if h["event"] == "points_reversed"]
    assert note["detail"]["points_taken"] == taken
    assert note["detail"]["points_given_back"] == 0
    assert note["detail"]["cause"] == "order.returned"

    # the same key again: the first answer, and neither points nor history move
    r = _post(client, path, admin_headers, body, key="pts-1")
    assert r.status_code == 200 and r.json() == first
    assert _balance(client, auth) == earned - taken
    assert client.get(f"/orders/{order['id']}").json()["history"] == history
    assert len(TestPay.calls_of("refund")) == 1


def test_a_history_note_written_meanwhile_does_not_fail_the_return(client, admin_headers,
                                                                   monkeypatch):
    """The loyalty consumer may note a reversal on the order while a return is at the
    gateway: the return is saved on the fresh order, not refused after refunding."""
    order = place_order(client, "ID", {"TEA-JAVA-BLACK": 2})
    _fulfil(client, admin_headers, order["id"])
    niaga = niaga_of(client)
    real = returns._gateway

    async def gateway_with_a_note_meanwhile(ctx, o, *args):
        fresh = await niaga.store.get_order(o.id)
        version = fresh.version
        fresh.record(ctx.clock(), "note", by="someone else")
        fresh.version += 1
        await niaga.store.save_order(fresh, version, [])
        return await real(ctx, o, *args)

    monkeypatch.setattr(returns, "_gateway", gateway_with_a_note_meanwhile)
    tea = order["lines"][0]
    r = _post(client, f"/admin/orders/{order['id']}/returns", admin_headers,
              {"lines": [{"line_id": tea["id"], "quantity": 1}]}, key="k")
    assert r.status_code == 200, r.text
    events = [h["event"] for h in r.json()["history"]]
    assert events[-2:] == ["note", "returned"]
    assert minor(r.json()["payment"]["refunded"]) == _unit_refunds(tea, 0, 1)
    assert len(TestPay.calls_of("refund")) == 1


def test_a_redelivered_return_event_notes_the_reversal_once(client, admin_headers,
                                                            monkeypatch):
    seen = []
    original = loyalty.on_event

    async def spy(ctx, event):
        seen.append(event)
        return await original(ctx, event)

    monkeypatch.setattr(loyalty, "on_event", spy)
    _, auth = _customer(client, admin_headers, "ulang@example.com")
    order = place_order(client, "DE", {"SANDAL-LEATHER-42": 1, "TEA-JAVA-BLACK": 1},
                        headers=auth)
    _fulfil(client, admin_headers, order["id"])
    tea = next(li for li in order["lines"] if li["sku"] == "TEA-JAVA-BLACK")
    _post(client, f"/admin/orders/{order['id']}/returns", admin_headers,
          {"lines": [{"line_id": tea["id"], "quantity": 1}]}, key="k")
    balance = _balance(client, auth)
    history = client.get(f"/orders/{order['id']}").json()["history"]
    assert [h["event"] for h in history].count("points_reversed") == 1
    niaga = niaga_of(client)

    async def redeliver():
        for event in [e for e in seen if e.type == "order.returned"]:
            await niaga.dispatcher.deliver(event)

    client.blocking_portal.call(redeliver)
    assert _balance(client, auth) == balance
    assert client.get(f"/orders/{order['id']}").json()["history"] == history


def test_a_reversal_whose_note_was_lost_is_noted_on_redelivery(client, admin_headers,
                                                               monkeypatch):
    """A crash between the ledger write and the order's note: the redelivered event
    writes the note, and takes no points twice."""
    seen = []
    original, note = loyalty.on_event, loyalty._note_on_order

    async def spy(ctx, event):
        seen.append(event)
        return await original(ctx, event)

    async def crash(*args):
        return None

    monkeypatch.setattr(loyalty, "on_event", spy)
    monkeypatch.setattr(loyalty, "_note_on_order", crash)
    _, auth = _customer(client, admin_headers, "hilang@example.com")
    order = place_order(client, "DE", {"SANDAL-LEATHER-42": 1, "TEA-JAVA-BLACK": 1},
                        headers=auth)
    earned = _earned(order)
    _fulfil(client, admin_headers, order["id"])
    tea = next(li for li in order["lines"] if li["sku"] == "TEA-JAVA-BLACK")
    _post(client, f"/admin/orders/{order['id']}/returns", admin_headers,
          {"lines": [{"line_id": tea["id"], "quantity": 1}]}, key="k")
    balance = _balance(client, auth)
    taken = earned - balance
    assert taken == earned * minor(tea["total"]) // (minor(order["total"])
                                                     - minor(order["shipping_total"]))
    history = client.get(f"/orders/{order['id']}").json()["history"]
    assert "points_reversed" not in [h["event"] for h in history]

    monkeypatch.setattr(loyalty, "_note_on_order", note)
    niaga = niaga_of(client)

    async def redeliver():
        for event in [e for e in seen if e.type == "order.returned"]:
            await niaga.dispatcher.deliver(event)

    client.blocking_portal.call(redeliver)
    client.blocking_portal.call(redeliver)
    assert _balance(client, auth) == balance
    history = client.get(f"/orders/{order['id']}").json()["history"]
    [entry] = [h for h in history if h["event"] == "points_reversed"]
    assert entry["detail"]["points_taken"] == taken
