"""One stock pool: a sale at the counter (POS) and a manual adjustment draw from the stock
the web shop shows, at once, per location and in total (every store)."""

from __future__ import annotations

from .helpers import (
    add_line,
    assert_cart,
    assert_order,
    assert_problem,
    availability,
    delivery_options,
    minor,
    new_cart,
    seeded_stock,
)

MARKET = "ID"
STORE = "id-jkt-store-gi"  # Niaga Grand Indonesia, Jakarta
POS = {"Niaga-Channel": "pos"}


def _levels(client, sku: str) -> tuple[int, dict[str, int]]:
    body = availability(client, sku, MARKET)
    return body["available"], {loc["id"]: loc["available"] for loc in body["locations"]}


def test_a_pos_sale_takes_stock_from_the_store_the_web_sees(client):
    sku = "BATIK-SHIRT-M"
    total, at = _levels(client, sku)
    assert at == seeded_stock(sku, MARKET)  # nothing sold yet: what the demo seeds
    assert at[STORE] >= 1

    till = new_cart(client, MARKET, "pos")
    assert (till["channel"], till["customer_id"]) == ("pos", None)
    r = client.post(f"/carts/{till['id']}/lines", json={"sku": sku, "quantity": 1},
                    headers=POS)
    assert r.status_code == 200, r.text
    # the counter: store pickup at this very store, no address needed
    [counter] = [o for o in delivery_options(client, till["id"])
                 if o["kind"] == "pickup" and o["location_id"] == STORE]
    assert counter["carrier"] == "store-pickup" and minor(counter["price"]) == 0
    r = client.put(f"/carts/{till['id']}/delivery", json={"option_id": counter["id"]},
                   headers=POS)
    assert r.status_code == 200, r.text
    cart = assert_cart(r.json())
    assert cart["address"] is None and cart["delivery"]["location_id"] == STORE

    r = client.post(f"/carts/{till['id']}/checkout", headers=POS | {"Idempotency-Key": "till-1"},
                    json={"payment": {"method": "testpay", "token": "tok_ok"}})
    assert r.status_code == 201, r.text
    order = assert_order(r.json())
    # paid at once: captured in full, nothing left to capture
    assert (order["channel"], order["channels"], order["status"]) == ("pos", ["pos"], "paid")
    assert order["payment"]["status"] == "captured"
    assert minor(order["payment"]["captured"]) == minor(order["total"]) == minor(cart["total"])
    assert order["delivery"]["location_id"] == STORE

    # the web's availability shows it at once: the store one lower, the total one lower
    after_total, after_at = _levels(client, sku)
    assert after_at == at | {STORE: at[STORE] - 1}
    assert after_total == total - 1


def test_a_pos_sale_cannot_take_more_than_the_store_holds(client):
    sku = "BATIK-SHIRT-M"
    _total, at = _levels(client, sku)
    till = new_cart(client, MARKET, "pos")
    add_line(client, till["id"], sku, at[STORE] + 1)  # the market has that many
    # but this store does not: no pickup here for this cart
    assert not [o for o in delivery_options(client, till["id"])
                if o["kind"] == "pickup" and o["location_id"] == STORE]


def test_an_adjustment_is_seen_at_once_by_availability_and_the_web_cart(client, admin_headers):
    sku = "TEA-JAVA-BLACK"
    total, at = _levels(client, sku)
    sold = min(3, at[STORE])
    assert sold > 0
    r = client.post(f"/admin/inventory/{sku}/{STORE}/adjust",
                    json={"delta": -sold, "reason": "pos_sale"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    level = r.json()
    assert (level["sku"], level["location_id"]) == (sku, STORE)
    assert level["available"] == at[STORE] - sold
    assert level["available"] == level["on_hand"] - level["reserved"]

    after_total, after_at = _levels(client, sku)
    assert after_at == at | {STORE: at[STORE] - sold}
    assert after_total == total - sold

    # a web cart cannot take more than is left in the market now
    web = new_cart(client, MARKET, "web")
    r = client.post(f"/carts/{web['id']}/lines", json={"sku": sku, "quantity": after_total + 1})
    body = assert_problem(r, 409)
    assert body.get("sku") == sku and body.get("available") == after_total, body
    assert client.get(f"/carts/{web['id']}").json()["lines"] == []
    cart = add_line(client, web["id"], sku, after_total)
    assert [(li["sku"], li["quantity"]) for li in cart["lines"]] == [(sku, after_total)]


def test_an_adjustment_below_zero_is_refused_and_changes_nothing(client, admin_headers):
    sku = "TEA-JAVA-BLACK"
    total, at = _levels(client, sku)
    r = client.post(f"/admin/inventory/{sku}/{STORE}/adjust",
                    json={"delta": -(at[STORE] + 1), "reason": "pos_sale"},
                    headers=admin_headers)
    assert_problem(r, 409)
    assert _levels(client, sku) == (total, at)
    r = client.post(f"/admin/inventory/{sku}/{STORE}/adjust", json={"delta": -1},
                    headers=admin_headers)
    assert_problem(r, (400, 422), "reason")
    assert _levels(client, sku) == (total, at)
