"""Risk rules over HTTP on both engines: refusals are 422 problems naming the rule and change
nothing; holds place the order on_hold until an admin releases it; velocity counts orders per
card, email and customer within the window."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from kernel.markets import demo_markets_path, parse_markets
from kernel.runtime import Niaga

from .helpers import (
    ADDRESSES,
    assert_order,
    assert_problem,
    availability,
    checkout,
    niaga_of,
    ready_cart,
)

SKU = "COFFEE-GAYO-250"


@pytest.fixture
def client_with(seeded_url: str, open_store: Callable[[str], Any],
                admin_headers: dict[str, str]) -> Iterator[Callable[..., TestClient]]:
    """``client_with(market, rules)``: the app over the seeded store, with the demo markets
    except that ``market`` runs ``risk-rules`` with exactly ``rules``."""
    opened: list[TestClient] = []

    def make(market: str, rules: dict[str, Any]) -> TestClient:
        from kernel.api.app import create_app

        raw = tomllib.loads(demo_markets_path().read_text(encoding="utf-8"))
        raw["markets"][market]["plugins"]["risk-rules"] = rules
        app = create_app(Niaga(open_store(seeded_url), parse_markets(raw)),
                         admin_token=admin_headers["Authorization"].removeprefix("Bearer "))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def _order(client: TestClient, market: str = "ID", *, address: dict | None = None,
           headers: dict | None = None, quantity: int = 1, **payment: Any):
    cart = ready_cart(client, market, {SKU: quantity}, address=address, headers=headers)
    return checkout(client, cart["id"], **payment)


def _refused(resp, rule: str) -> dict:
    body = assert_problem(resp, 422)
    assert body["rule"] == rule, body
    assert body["detail"].startswith(f"refused by rule {rule}: "), body
    assert {"field": "cart", "message": body["detail"].removeprefix("refused by rule ")} in \
        body["errors"], body
    return body


def test_an_order_above_the_max_value_is_refused_and_nothing_is_held(client_with):
    client = client_with("ID", {"max_order_value": "200000", "max_order_value_action": "reject"})
    before = availability(client, SKU, "ID")["available"]
    body = _refused(_order(client, quantity=3), "max-order-value")
    assert "200000.00 IDR" in body["detail"]
    assert availability(client, SKU, "ID")["available"] == before  # nothing reserved
    assert_order(_order(client, quantity=1).json())  # a small one passes


def test_an_order_above_the_max_value_is_held_until_an_admin_releases_it(client_with,
                                                                        admin_headers):
    client = client_with("ID", {"max_order_value": "200000"})  # action: hold (the default)
    before = availability(client, SKU, "ID")["available"]
    r = _order(client, quantity=3)
    assert r.status_code == 201, r.text
    order = assert_order(r.json())
    assert order["status"] == "on_hold"
    assert order["hold"]["rule"] == "max-order-value"
    assert order["payment"]["status"] == "captured"  # the money waits with the order
    assert availability(client, SKU, "ID")["available"] == before - 3  # so does the stock
    assert [h["event"] for h in order["history"]] == ["placed", "held"]
    assert order["history"][1]["detail"]["rules"] == ["max-order-value"]
    path = f"/admin/orders/{order['id']}/fulfillments"
    assert_problem(client.post(path, json={}, headers=admin_headers), 409)  # nothing ships
    r = client.post(f"/admin/orders/{order['id']}/release", json={"note": "called her"},
                    headers=admin_headers)
    assert r.status_code == 200, r.text
    released = r.json()
    assert released["status"] == "paid" and released["hold"] is None
    assert released["history"][-1]["event"] == "released"
    assert client.post(path, json={}, headers=admin_headers).status_code == 200


def test_velocity_per_card_refuses_after_max_orders_in_the_window(client_with):
    client = client_with("ID", {"velocity": [{"key": "card", "max_orders": 2,
                                              "window_hours": 1}]})
    for _ in range(2):
        assert _order(client, card_token="card-A").status_code == 201
    body = _refused(_order(client, card_token="card-A"), "velocity-card")
    assert "placed 2 order(s) in the last 1 h" in body["detail"]
    assert _order(client, card_token="card-B").status_code == 201  # another card
    # an hour later the window has moved on
    niaga = niaga_of(client)
    start = niaga.clock()
    niaga.clock = lambda: start + 3601
    assert _order(client, card_token="card-A").status_code == 201


def test_velocity_per_card_counts_the_gateway_token_when_no_card_token_is_given(client_with):
    client = client_with("ID", {"velocity": [{"key": "card", "max_orders": 1,
                                              "window_hours": 24}]})
    assert _order(client).status_code == 201  # testpay token tok_ok
    _refused(_order(client), "velocity-card")
    # bank transfer names no card: the card rule does not apply
    assert _order(client, method="bank-transfer").status_code == 201


def test_velocity_per_email_ignores_case_and_can_hold(client_with):
    client = client_with("ID", {"velocity": [{"key": "email", "max_orders": 2,
                                              "window_hours": 24, "action": "hold"}]})
    budi = ADDRESSES["ID"]
    for email in ("budi@example.com", "BUDI@Example.com"):
        r = _order(client, address={**budi, "email": email}, card_token=email)
        assert r.status_code == 201 and r.json()["status"] == "paid", r.text
    third = _order(client, address={**budi, "email": "Budi@example.com"}, card_token="c3")
    assert third.status_code == 201 and third.json()["status"] == "on_hold"
    assert third.json()["hold"]["rule"] == "velocity-email"
    other = _order(client, address={**budi, "email": "siti@example.com"}, card_token="c4")
    assert other.json()["status"] == "paid"


def test_velocity_per_customer(client_with, admin_headers):
    client = client_with("ID", {"velocity": [{"key": "customer", "max_orders": 1,
                                              "window_hours": 24}]})
    r = client.post("/admin/customers", json={"email": "dewi@example.com"},
                    headers=admin_headers)
    assert r.status_code == 201, r.text
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    assert _order(client, headers=auth, card_token="c1").status_code == 201
    _refused(_order(client, headers=auth, card_token="c2"), "velocity-customer")
    assert _order(client, card_token="c3").status_code == 201  # a guest has no customer id


def test_country_mismatch_holds_and_a_bad_billing_country_is_named(client_with):
    client = client_with("US", {"country_mismatch": "hold"})
    same = _order(client, "US", billing_country="US")
    assert same.status_code == 201 and same.json()["status"] == "paid", same.text
    other = _order(client, "US", billing_country="DE")
    assert other.status_code == 201 and other.json()["status"] == "on_hold"
    assert other.json()["hold"] == {"rule": "country-mismatch", "reason":
                                    "billing country DE differs from the address's country US"}
    assert_problem(_order(client, "US", billing_country="usa"), 422, "payment.billing_country")


def test_refusals_win_over_holds(client_with):
    client = client_with("US", {"country_mismatch": "hold", "max_order_value": "1.00",
                                "max_order_value_action": "reject"})
    body = _refused(_order(client, "US", billing_country="DE"), "max-order-value")
    assert [e["message"].split(":")[0] for e in body["errors"]] == ["max-order-value"]


def test_the_demo_markets_run_risk_rules_in_id_and_us(client):
    plugins = {m["code"]: m["plugins"] for m in client.get("/markets").json()}
    assert "risk-rules" in plugins["ID"] and "risk-rules" in plugins["US"]
    # the demo US market holds an order billed abroad
    r = _order(client, "US", billing_country="CA")
    assert r.status_code == 201 and r.json()["status"] == "on_hold", r.text
    assert r.json()["hold"]["rule"] == "country-mismatch"
