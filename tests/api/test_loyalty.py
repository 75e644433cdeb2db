"""Loyalty points over HTTP: earn on paid orders, redeem in any market, reverse, /me.

Expected points are computed from the demo markets file (the plugin's settings)
and the order's own totals, never copied from a balance the server reports.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from kernel.loyalty import LedgerEntry
from kernel.services import loyalty
from kernel.services.orders import cancel
from plugins.payments.testpay import TestPay

from .helpers import (
    DIGITS,
    add_line,
    assert_cart,
    assert_order,
    assert_problem,
    checkout,
    idem,
    markets_toml,
    minor,
    niaga_of,
    place_order,
    ready_cart,
)


def _customer(client, admin_headers, email: str) -> dict:
    r = client.post("/admin/customers", json={"email": email}, headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    return r.json()


def _auth(customer: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer['token']}"}


def _settings(market: str) -> dict:
    return markets_toml()[market]["plugins"]["points"]


def _earned(order: dict, multiplier: str = "1") -> tuple[int, int]:
    """(points, base points) the demo settings give for a paid order."""
    cur = order["currency"]
    paid = Decimal(minor(order["total"]) - minor(order["shipping_total"])).scaleb(-DIGITS[cur])
    base = int((paid * Decimal(_settings(order["market"])["earn_per_unit"]))
               .to_integral_value(ROUND_FLOOR))
    return int((base * Decimal(multiplier)).to_integral_value(ROUND_FLOOR)), base


def _settle(client) -> None:
    """Let the outbox relay finish (it runs after each write; draining again is harmless)."""
    client.blocking_portal.call(niaga_of(client).dispatcher.drain)


def _me(client, customer: dict, **params) -> dict:
    _settle(client)
    r = client.get("/me", headers=_auth(customer), params=params)
    assert r.status_code == 200, r.text
    return r.json()["loyalty"]


def _ledger(client, admin_headers, customer: dict) -> list[dict]:
    r = client.get(f"/admin/customers/{customer['id']}/export", headers=admin_headers)
    assert r.status_code == 200, r.text
    return r.json()["loyalty"]["ledger"]


def _grant(client, customer: dict, points: int, entry_id: str = "grant") -> None:
    async def run() -> None:
        await niaga_of(client).store.loyalty_apply([LedgerEntry(
            id=f"{entry_id}:{customer['id']}", customer_id=customer["id"], points=points,
            kind="adjust", note="welcome gift")])

    client.blocking_portal.call(run)


def _use(client, cart_id: str, customer: dict, points: int) -> dict:
    r = client.put(f"/carts/{cart_id}/loyalty", json={"points": points}, headers=_auth(customer))
    assert r.status_code == 200, r.text
    return assert_cart(r.json())


def _post(client, path, admin_headers, json=None, key=None):
    headers = dict(admin_headers) | (idem(key) if key else {})
    r = client.post(path, json=json or {}, headers=headers)
    assert r.status_code == 200, r.text
    return assert_order(r.json())


def test_me_shows_a_zero_balance_and_the_first_tier(client, admin_headers):
    c = _customer(client, admin_headers, "nol@example.com")
    assert _me(client, c) == {"balance": 0, "lifetime_points": 0, "market": "ID",
                              "tier": {"name": "member", "multiplier": "1"}}
    assert _me(client, c, market="JP")["market"] == "JP"
    assert_problem(client.get("/me", params={"market": "XX"}, headers=_auth(c)), 422, "market")


def test_a_paid_order_earns_and_a_guest_order_does_not(client, admin_headers):
    c = _customer(client, admin_headers, "erika@example.com")
    order = place_order(client, "DE", {"SANDAL-LEATHER-42": 2}, headers=_auth(c))
    place_order(client, "DE", {"SANDAL-LEATHER-42": 1})  # a guest earns nothing, anywhere
    points, base = _earned(order)
    assert points > 0
    assert _me(client, c) == {"balance": points, "lifetime_points": base, "market": "ID",
                              "tier": {"name": "member", "multiplier": "1"}}
    [earn] = _ledger(client, admin_headers, c)
    assert (earn["id"], earn["kind"], earn["points"], earn["base_points"], earn["market"]) == (
        f"earn:{order['id']}", "earn", points, base, "DE")


def test_unpaid_orders_earn_when_they_are_paid(client, admin_headers):
    c = _customer(client, admin_headers, "budi@example.com")
    order = place_order(client, "ID", {"SARONG-TENUN": 1}, method="bank-transfer",
                        headers=_auth(c))
    assert _me(client, c)["balance"] == 0
    _post(client, f"/admin/orders/{order['id']}/mark-paid", admin_headers)
    assert _me(client, c)["balance"] == _earned(order)[0]


def test_one_balance_across_markets_redeemed_at_checkout(client, admin_headers):
    c = _customer(client, admin_headers, "siti@example.com")
    first = place_order(client, "DE", {"SANDAL-LEATHER-42": 3}, headers=_auth(c))
    earned_de, base_de = _earned(first)
    assert earned_de >= _settings("ID")["min_points"]

    # spend every point in Indonesia, in rupiah
    cart = ready_cart(client, "ID", {"BATIK-SHIRT-M": 2}, headers=_auth(c))
    before = cart
    _settle(client)
    cart = _use(client, cart["id"], c, earned_de)
    value = Decimal(_settings("ID")["point_value"])
    discount = minor({"amount": f"{earned_de * value:.2f}", "currency": "IDR"})
    assert cart["loyalty"] == {"points": earned_de,
                               "discount": {"amount": f"{earned_de * value:.2f}",
                                            "currency": "IDR"}}
    assert minor(cart["discount_total"]) == minor(before["discount_total"]) + discount
    assert minor(cart["total"]) == minor(before["total"]) - discount
    assert any(a["source"] == "points" and a["kind"] == "discount" for a in cart["adjustments"])

    r = checkout(client, cart["id"])
    assert r.status_code == 201, r.text
    second = assert_order(r.json())
    assert second["loyalty"] == cart["loyalty"]
    assert minor(second["total"]) == minor(cart["total"])
    earned_id, base_id = _earned(second)
    me = _me(client, c)
    assert me["balance"] == earned_de - earned_de + earned_id
    assert me["lifetime_points"] == base_de + base_id
    kinds = [(e["kind"], e["market"], e["points"]) for e in _ledger(client, admin_headers, c)]
    assert sorted(kinds) == sorted([("earn", "DE", earned_de), ("redeem", "ID", -earned_de),
                                    ("earn", "ID", earned_id)])


def test_points_cannot_be_spent_twice(client, admin_headers):
    c = _customer(client, admin_headers, "dua@example.com")
    _grant(client, c, 300)
    a = ready_cart(client, "DE", {"SANDAL-LEATHER-42": 1}, headers=_auth(c))
    # one open cart per customer and market: the second cart is in another market (one balance)
    b = ready_cart(client, "ID", {"SARONG-TENUN": 1}, headers=_auth(c), channel="app")
    _use(client, a["id"], c, 300)
    b = _use(client, b["id"], c, 300)  # quoted while the balance still holds them
    r = checkout(client, a["id"])
    assert r.status_code == 201, r.text
    voids_before = len(TestPay.calls_of("void")) + len(TestPay.calls_of("refund"))
    r = checkout(client, b["id"])
    assert_problem(r, 409)
    # nothing placed, the payment undone, the cart still open with its points
    assert len(TestPay.calls_of("void")) + len(TestPay.calls_of("refund")) == voids_before + 1
    assert client.get(f"/carts/{b['id']}").json()["status"] == "open"
    orders = client.get("/me/orders", headers=_auth(c)).json()
    assert [o["cart_id"] for o in orders] == [a["id"]]
    earned = _earned(orders[0])[0]
    assert _me(client, c)["balance"] == earned
    # the next change quotes the points again: too few left (below the minimum), dropped
    assert earned < _settings("DE")["min_points"]
    cart = add_line(client, b["id"], "TEA-JAVA-BLACK", 1)
    assert cart["loyalty"] is None


def test_a_cart_change_quotes_the_points_again(client, admin_headers):
    c = _customer(client, admin_headers, "tiga@example.com")
    _grant(client, c, 10_000)
    cart = ready_cart(client, "DE", {"SANDAL-LEATHER-42": 1, "TEA-JAVA-BLACK": 1},
                      headers=_auth(c))
    share = Decimal(_settings("DE")["max_redeem_share"]) / 100
    goods = minor(cart["subtotal"]) - minor(cart["discount_total"])
    cart = _use(client, cart["id"], c, 10_000)
    cap = int(goods * share)  # one point is one cent
    assert cart["loyalty"]["points"] == cap
    sandal = next(li for li in cart["lines"] if li["sku"] == "SANDAL-LEATHER-42")
    r = client.delete(f"/carts/{cart['id']}/lines/{sandal['id']}")
    assert r.status_code == 200, r.text
    cart = assert_cart(r.json())
    tea = minor(cart["subtotal"])
    assert cart["loyalty"]["points"] == max(int(tea * share), 0)
    assert minor(cart["loyalty"]["discount"]) == cart["loyalty"]["points"]
    # 0 points removes them
    r = client.put(f"/carts/{cart['id']}/loyalty", json={"points": 0}, headers=_auth(c))
    assert r.json()["loyalty"] is None


def test_refusals_name_points_and_change_nothing(client, admin_headers):
    c = _customer(client, admin_headers, "empat@example.com")
    _grant(client, c, 150)
    cart = ready_cart(client, "JP", {"TOTE-CANVAS": 1}, headers=_auth(c))
    before = client.get(f"/carts/{cart['id']}").json()
    for points in (151, 99):  # more than the balance; fewer than the minimum
        r = client.put(f"/carts/{cart['id']}/loyalty", json={"points": points},
                       headers=_auth(c))
        assert_problem(r, 422, "points")
    assert_problem(client.put(f"/carts/{cart['id']}/loyalty", json={"points": -1},
                              headers=_auth(c)), (400, 422), "points")
    assert client.get(f"/carts/{cart['id']}").json() == before
    assert _me(client, c)["balance"] == 150


def test_cancel_reverses_earned_and_refunds_redeemed_points(client, admin_headers):
    c = _customer(client, admin_headers, "lima@example.com")
    first = place_order(client, "DE", {"SANDAL-LEATHER-42": 2}, headers=_auth(c))
    earned1, base1 = _earned(first)
    cart = ready_cart(client, "DE", {"SARONG-TENUN": 2}, headers=_auth(c))
    _settle(client)
    _use(client, cart["id"], c, 100)
    r = checkout(client, cart["id"])
    assert r.status_code == 201, r.text
    second = assert_order(r.json())
    earned2, _ = _earned(second)
    assert _me(client, c)["balance"] == earned1 - 100 + earned2

    _post(client, f"/admin/orders/{second['id']}/cancel", admin_headers, {"reason": "changed"})
    me = _me(client, c)
    assert (me["balance"], me["lifetime_points"]) == (earned1, base1)
    mine = [e for e in _ledger(client, admin_headers, c) if e["order_id"] == second["id"]]
    assert sorted((e["kind"], e["points"]) for e in mine) == sorted([
        ("redeem", -100), ("earn", earned2), ("refund_redeem", 100),
        ("reverse_earn", -earned2)])
    assert sum(e["points"] for e in mine) == 0


def test_an_expired_order_gives_its_points_back(client, admin_headers):
    c = _customer(client, admin_headers, "enam@example.com")
    _grant(client, c, 500)
    cart = ready_cart(client, "ID", {"TEA-JAVA-BLACK": 2}, headers=_auth(c))
    _use(client, cart["id"], c, 200)
    r = checkout(client, cart["id"], method="bank-transfer")
    assert r.status_code == 201, r.text
    order = r.json()
    assert _me(client, c)["balance"] == 300
    niaga = niaga_of(client)

    async def expire() -> None:  # what the sweeper does when the payment window passes
        await cancel(niaga, order["id"], "payment window passed", source="sweeper",
                     event="expired")

    client.blocking_portal.call(expire)
    assert client.get(f"/orders/{order['id']}").json()["status"] == "cancelled"
    assert _me(client, c)["balance"] == 500


def test_a_partial_return_reverses_pro_rata_and_a_full_one_the_rest(client, admin_headers):
    c = _customer(client, admin_headers, "tujuh@example.com")
    order = place_order(client, "DE", {"SANDAL-LEATHER-42": 1, "TEA-JAVA-BLACK": 3},
                        headers=_auth(c))
    earned, base = _earned(order)
    assert _me(client, c)["balance"] == earned
    _post(client, f"/admin/orders/{order['id']}/fulfillments", admin_headers)
    tea = next(li for li in order["lines"] if li["sku"] == "TEA-JAVA-BLACK")
    returned = _post(client, f"/admin/orders/{order['id']}/returns", admin_headers,
                     {"lines": [{"line_id": tea["id"], "quantity": 2}], "restock": True},
                     key="ret-1")
    refund = minor(returned["payment"]["refunded"])
    goods = minor(order["total"]) - minor(order["shipping_total"])
    taken, taken_base = earned * refund // goods, base * refund // goods
    me = _me(client, c)
    assert (me["balance"], me["lifetime_points"]) == (earned - taken, base - taken_base)

    rest = [{"line_id": li["id"], "quantity": li["quantity"] - li["returned"]}
            for li in returned["lines"] if li["quantity"] > li["returned"]]
    done = _post(client, f"/admin/orders/{order['id']}/returns", admin_headers,
                 {"lines": rest, "restock": True}, key="ret-2")
    assert done["status"] == "returned"
    me = _me(client, c)
    assert (me["balance"], me["lifetime_points"]) == (0, 0)


def test_points_already_spent_are_not_taken_below_zero(client, admin_headers):
    c = _customer(client, admin_headers, "delapan@example.com")
    first = place_order(client, "DE", {"SANDAL-LEATHER-42": 3}, headers=_auth(c))
    earned, _ = _earned(first)
    cart = ready_cart(client, "DE", {"SARONG-TENUN": 2}, headers=_auth(c))
    _settle(client)
    _use(client, cart["id"], c, earned)
    r = checkout(client, cart["id"])
    assert r.status_code == 201, r.text
    second = r.json()
    earned2, _ = _earned(second)
    assert _me(client, c)["balance"] == earned2
    # the first order is cancelled after its points paid for the second one
    _post(client, f"/admin/orders/{first['id']}/cancel", admin_headers)
    assert _me(client, c)["balance"] == 0
    [reverse] = [e for e in _ledger(client, admin_headers, c)
                 if e["kind"] == "reverse_earn" and e["order_id"] == first["id"]]
    assert reverse["points"] == -earned2
    assert f"{earned - earned2} of {earned} points were already spent" in reverse["note"]


def test_a_redelivered_event_applies_once(client, admin_headers, monkeypatch):
    seen = []
    original = loyalty.on_event

    async def spy(ctx, event):
        seen.append(event)
        return await original(ctx, event)

    monkeypatch.setattr(loyalty, "on_event", spy)
    c = _customer(client, admin_headers, "sembilan@example.com")
    _grant(client, c, 100)
    cart = ready_cart(client, "DE", {"SANDAL-LEATHER-42": 2}, headers=_auth(c))
    _use(client, cart["id"], c, 100)
    order = assert_order(checkout(client, cart["id"]).json())
    returned = place_order(client, "DE", {"SARONG-TENUN": 1, "TEA-JAVA-BLACK": 1},
                           headers=_auth(c))
    _post(client, f"/admin/orders/{order['id']}/cancel", admin_headers)
    _post(client, f"/admin/orders/{returned['id']}/fulfillments", admin_headers)
    tea = next(li for li in returned["lines"] if li["sku"] == "TEA-JAVA-BLACK")
    _post(client, f"/admin/orders/{returned['id']}/returns", admin_headers,
          {"lines": [{"line_id": tea["id"], "quantity": 1}], "restock": False}, key="r")
    me = _me(client, c)
    ledger = _ledger(client, admin_headers, c)
    types = {e.type for e in seen}
    assert {"order.paid", "order.cancelled", "order.returned"} <= types
    assert {e["kind"] for e in ledger} == {"adjust", "redeem", "earn", "refund_redeem",
                                           "reverse_earn"}
    niaga = niaga_of(client)

    async def redeliver() -> None:
        for event in list(seen):
            await niaga.dispatcher.deliver(event)  # the relay's own path
            assert await original(niaga, event) == []  # and straight to the ledger

    client.blocking_portal.call(redeliver)
    assert _me(client, c) == me
    assert _ledger(client, admin_headers, c) == ledger


def test_export_has_the_ledger_and_erasure_keeps_it(client, admin_headers):
    c = _customer(client, admin_headers, "sepuluh@example.com")
    order = place_order(client, "DE", {"SANDAL-LEATHER-42": 1}, headers=_auth(c))
    _settle(client)
    r = client.get(f"/admin/customers/{c['id']}/export", headers=admin_headers)
    exported = r.json()["loyalty"]
    assert exported["account"]["balance"] == _earned(order)[0]
    assert [e["order_id"] for e in exported["ledger"]] == [order["id"]]
    assert client.delete(f"/admin/customers/{c['id']}", headers=admin_headers).status_code == 204
    r = client.get(f"/admin/customers/{c['id']}/export", headers=admin_headers)
    kept = r.json()["loyalty"]
    assert kept == exported  # customer id and points only: nothing personal to erase
    assert "sepuluh@example.com" not in r.text
