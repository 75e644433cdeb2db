"""The stock pool over HTTP: low-stock thresholds, levels per location, an order split
across locations, and fulfilment from one or several locations."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import assert_order, assert_problem, place_order

WH, GI, PVJ, KOKAS = "id-jkt-wh", "id-jkt-store-gi", "id-bdg-store-pvj", "id-jkt-store-kokas"
SKU = "COBEK-STONE"


def _put(client, admin, sku: str, loc: str, body: dict[str, Any]):
    return client.put(f"/admin/inventory/{sku}/{loc}", json=body, headers=admin)


def _levels(client, admin, sku: str) -> dict[str, dict[str, Any]]:
    r = client.get(f"/admin/inventory/{sku}", headers=admin)
    assert r.status_code == 200, r.text
    levels = {lv["location_id"]: lv for lv in r.json()}
    for lv in levels.values():
        assert lv["available"] == lv["on_hand"] - lv["reserved"]
        assert lv["low"] == (lv["low_threshold"] > 0 and lv["available"] <= lv["low_threshold"])
    return levels


def _stock_only_at(client, admin, sku: str, on_hand: dict[str, int]) -> None:
    """The market's locations hold exactly ``on_hand`` of the SKU (others none)."""
    for loc in (WH, GI, PVJ, KOKAS):
        r = _put(client, admin, sku, loc, {"on_hand": on_hand.get(loc, 0)})
        assert r.status_code == 200, r.text


# -- thresholds ---------------------------------------------------------------------------


def test_put_sets_the_low_threshold_next_to_or_without_on_hand(client, admin_headers):
    r = _put(client, admin_headers, SKU, WH, {"on_hand": 12, "low_threshold": 5})
    assert r.status_code == 200, r.text
    level = r.json()
    assert (level["on_hand"], level["low_threshold"], level["available"], level["low"]) == (
        12, 5, 12, False)
    # the threshold alone keeps on_hand; on_hand alone keeps the threshold
    level = _put(client, admin_headers, SKU, WH, {"low_threshold": 12}).json()
    assert (level["on_hand"], level["low_threshold"], level["low"]) == (12, 12, True)
    level = _put(client, admin_headers, SKU, WH, {"on_hand": 20}).json()
    assert (level["on_hand"], level["low_threshold"], level["low"]) == (20, 12, False)
    assert _levels(client, admin_headers, SKU)[WH]["low_threshold"] == 12


def test_bad_stock_updates_name_the_field_and_change_nothing(client, admin_headers):
    _put(client, admin_headers, SKU, WH, {"on_hand": 7, "low_threshold": 2})
    before = _levels(client, admin_headers, SKU)
    assert_problem(_put(client, admin_headers, SKU, WH, {}), 422, "on_hand")
    assert_problem(_put(client, admin_headers, SKU, WH, {"low_threshold": -1}), (400, 422),
                   "low_threshold")
    assert_problem(_put(client, admin_headers, SKU, WH, {"low_threshold": "few"}), (400, 422),
                   "low_threshold")
    assert_problem(_put(client, admin_headers, SKU, WH, {"on_hand": -3, "low_threshold": 1}),
                   (400, 422), "on_hand")
    assert_problem(_put(client, admin_headers, SKU, WH, {"threshold": 1}), (400, 422))
    assert_problem(_put(client, admin_headers, SKU, "nowhere", {"low_threshold": 1}), 404)
    assert_problem(_put(client, admin_headers, "NO-SUCH-SKU", WH, {"low_threshold": 1}), 404)
    assert _levels(client, admin_headers, SKU) == before
    assert_problem(client.get("/admin/inventory/NO-SUCH-SKU", headers=admin_headers), 404)
    assert client.get(f"/admin/inventory/{SKU}").status_code == 401


def test_adjusting_below_the_threshold_shows_low(client, admin_headers):
    _put(client, admin_headers, SKU, GI, {"on_hand": 6, "low_threshold": 3})
    path = f"/admin/inventory/{SKU}/{GI}/adjust"
    level = client.post(path, json={"delta": -2, "reason": "pos_sale"},
                        headers=admin_headers).json()
    assert (level["available"], level["low"]) == (4, False)
    level = client.post(path, json={"delta": -1, "reason": "pos_sale"},
                        headers=admin_headers).json()
    assert (level["available"], level["low_threshold"], level["low"]) == (3, 3, True)


# -- allocation split across locations -------------------------------------------------------


def _split_order(client, admin) -> tuple[dict[str, Any], int, int]:
    """4 units wanted; the warehouse has 3 and the Grand Indonesia store 2, nobody all 4: the
    default rule drains the warehouse first, then stores in id order (PVJ has none)."""
    _stock_only_at(client, admin, SKU, {WH: 3, GI: 2})
    order = place_order(client, "ID", {SKU: 4})
    return order, 3, 1


def test_an_order_split_across_two_locations_holds_units_at_both(client, admin_headers):
    order, at_wh, at_gi = _split_order(client, admin_headers)
    r = client.get(f"/admin/orders/{order['id']}/allocations", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert sorted((a["sku"], a["location_id"], a["quantity"]) for a in r.json()) == sorted(
        [(SKU, WH, at_wh), (SKU, GI, at_gi)])
    levels = _levels(client, admin_headers, SKU)
    assert (levels[WH]["on_hand"], levels[WH]["reserved"]) == (3, at_wh)
    assert (levels[GI]["on_hand"], levels[GI]["reserved"]) == (2, at_gi)
    assert_problem(client.get("/admin/orders/nope/allocations", headers=admin_headers), 404)


def test_fulfilling_a_split_order_records_one_fulfilment_per_location(client, admin_headers):
    order, at_wh, at_gi = _split_order(client, admin_headers)
    path = f"/admin/orders/{order['id']}/fulfillments"
    # one tracking number cannot cover two parcels: refused, nothing changes
    r = client.post(path, json={"tracking_number": "TRK-1"}, headers=admin_headers)
    assert_problem(r, 422, "tracking_number")
    assert client.get(f"/orders/{order['id']}").json()["status"] == "paid"

    r = client.post(path, json={}, headers=admin_headers)
    assert r.status_code == 200, r.text
    done = assert_order(r.json())
    assert done["status"] == "fulfilled"
    line_id = order["lines"][0]["id"]
    got = sorted((f["location_id"], f["lines"]) for f in done["fulfillments"])
    assert got == sorted([(WH, [{"line_id": line_id, "quantity": at_wh}]),
                          (GI, [{"line_id": line_id, "quantity": at_gi}])])
    tracking = [f["tracking_number"] for f in done["fulfillments"]]
    assert all(tracking) and len(set(tracking)) == 2  # each parcel booked on its own
    steps = [h for h in done["history"] if h["event"] in ("partially_fulfilled", "fulfilled")]
    assert [(h["detail"]["from"], h["detail"]["to"]) for h in steps] == [
        ("paid", "partially_fulfilled"), ("partially_fulfilled", "fulfilled")]
    assert {h["detail"]["fulfillment"] for h in steps} == {f["id"] for f in done["fulfillments"]}
    levels = _levels(client, admin_headers, SKU)
    assert (levels[WH]["on_hand"], levels[WH]["reserved"]) == (3 - at_wh, 0)
    assert (levels[GI]["on_hand"], levels[GI]["reserved"]) == (2 - at_gi, 0)
    assert client.get(f"/admin/orders/{order['id']}/allocations",
                      headers=admin_headers).json() == []


def test_a_named_location_fulfils_only_from_there(client, admin_headers):
    order, at_wh, at_gi = _split_order(client, admin_headers)
    path = f"/admin/orders/{order['id']}/fulfillments"
    line_id = order["lines"][0]["id"]
    r = client.post(path, json={"location_id": GI}, headers=admin_headers)  # all 4: GI has 1
    assert_problem(r, 422, "lines")
    r = client.post(path, json={"location_id": GI,
                                "lines": [{"line_id": line_id, "quantity": at_gi}]},
                    headers=admin_headers)
    assert r.status_code == 200, r.text
    part = assert_order(r.json())
    assert part["status"] == "partially_fulfilled"
    assert [(f["location_id"], f["lines"]) for f in part["fulfillments"]] == [
        (GI, [{"line_id": line_id, "quantity": at_gi}])]
    levels = _levels(client, admin_headers, SKU)
    assert (levels[GI]["on_hand"], levels[GI]["reserved"]) == (2 - at_gi, 0)
    assert (levels[WH]["on_hand"], levels[WH]["reserved"]) == (3, at_wh)  # untouched
    # nothing more is held at GI
    r = client.post(path, json={"location_id": GI,
                                "lines": [{"line_id": line_id, "quantity": 1}]},
                    headers=admin_headers)
    assert_problem(r, 422, "lines")
    assert client.get(f"/orders/{order['id']}").json()["fulfillments"] == part["fulfillments"]
    # the rest leaves the warehouse with the tracking number given
    r = client.post(path, json={"tracking_number": "TRK-WH"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    full = r.json()
    assert full["status"] == "fulfilled"
    assert (full["fulfillments"][-1]["location_id"], full["fulfillments"][-1]["tracking_number"]
            ) == (WH, "TRK-WH")
    assert sum(f["lines"][0]["quantity"] for f in full["fulfillments"]) == 4
