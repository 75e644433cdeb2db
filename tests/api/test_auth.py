"""Every /admin and /me route (found by walking the app) refuses missing and forged tokens."""

from __future__ import annotations

import re

import pytest

from .helpers import assert_problem

# plausible values for path parameters, by name (real ids where the demo has them)
DUMMY = {"sku": "BATIK-SHIRT-M", "location_id": "id-jkt-wh", "order_id": "AAAAAAAAAAAAAAAAAAAAAA",
         "customer_id": "AAAAAAAAAAAAAAAAAAAAAA", "cart_id": "AAAAAAAAAAAAAAAAAAAAAA",
         "line_id": "AAAAAAAAAAAAAAAAAAAAAA"}
# plausible bodies, so a guard cannot hide behind body validation
BODIES = {
    ("PUT", "/admin/products/{}"): {"names": {"en-US": "X"},
                                    "prices": {"ID": {"amount": "1.00", "currency": "IDR"}}},
    ("POST", "/admin/customers"): {"email": "x@example.com"},
    ("PUT", "/admin/inventory/{}/{}"): {"on_hand": 1},
    ("POST", "/admin/inventory/{}/{}/adjust"): {"delta": -1, "reason": "pos_sale"},
    ("POST", "/admin/orders/{}/returns"): {"lines": [{"line_id": "x", "quantity": 1}]},
    ("POST", "/me/cart/merge"): {"cart_id": "AAAAAAAAAAAAAAAAAAAAAA"},
}
QUERY = {"/me/cart": {"market": "ID"}}
SKIP_METHODS = {"OPTIONS", "HEAD"}  # CORS preflights carry no credentials
CONTRACT = {
    ("PUT", "/admin/products/{}"), ("DELETE", "/admin/products/{}"),
    ("POST", "/admin/customers"), ("GET", "/admin/customers/{}/export"),
    ("DELETE", "/admin/customers/{}"), ("PUT", "/admin/inventory/{}/{}"),
    ("POST", "/admin/inventory/{}/{}/adjust"), ("POST", "/admin/orders/{}/mark-paid"),
    ("POST", "/admin/orders/{}/capture"), ("POST", "/admin/orders/{}/fulfillments"),
    ("POST", "/admin/orders/{}/cancel"), ("POST", "/admin/orders/{}/returns"),
    ("GET", "/admin/plugins"), ("GET", "/admin/reports/sales"),
    ("GET", "/me"), ("GET", "/me/cart"), ("POST", "/me/cart/merge"), ("GET", "/me/orders"),
}


def _param(match: re.Match) -> str:
    return DUMMY.get(match.group(1), "dummy")


def protected_routes(app, prefix: str) -> list[tuple[str, str, str]]:
    """(method, concrete path, template) for every route under ``prefix``."""
    out = []
    for route in app.routes:
        if route.path != prefix and not route.path.startswith(prefix + "/"):
            continue
        template = re.sub(r"\{[^}]*\}", "{}", route.path)
        concrete = re.sub(r"\{([^}:]+)(?::[^}]*)?\}", _param, route.path)
        for method in sorted(set(getattr(route, "methods", ())) - SKIP_METHODS):
            out.append((method, concrete, template))
    return out


def _send(client, method: str, path: str, template: str, headers: dict[str, str]):
    body = BODIES.get((method, template))
    kwargs = {"headers": {**headers, "Idempotency-Key": "auth-test"},
              "params": QUERY.get(template)}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = body if body is not None else {}
    return client.request(method, path, **kwargs)


BAD_HEADERS = [
    {},
    {"Authorization": "Bearer forged-token"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic YWRtaW46YWRtaW4="},
    {"Authorization": "adm_test_token"},  # the right token without the scheme
]


@pytest.mark.parametrize("prefix", ["/admin", "/me"])
def test_protected_routes_refuse_missing_and_forged_tokens(client, admin_headers, prefix):
    routes = protected_routes(client.app, prefix)
    # the walk finds every contract route under the prefix (more may be added)
    found = {(m, t) for m, _, t in routes}
    wanted = {(m, t) for m, t in CONTRACT if t.startswith(prefix)}
    assert wanted <= found, wanted - found
    before = client.get("/products", params={"market": "ID"}).json()
    for method, path, template in routes:
        for headers in BAD_HEADERS:
            r = _send(client, method, path, template, headers)
            body = assert_problem(r, 401)
            assert r.headers.get("www-authenticate", "").lower().startswith("bearer"), (
                method, path)
            assert body["status"] == 401, (method, path, headers)
    assert client.get("/products", params={"market": "ID"}).json() == before


def test_a_customer_token_is_not_an_admin_token(client, admin_headers):
    r = client.post("/admin/customers", json={"email": "c@example.com"}, headers=admin_headers)
    token = r.json()["token"]
    for method, path, template in protected_routes(client.app, "/admin"):
        r = _send(client, method, path, template, {"Authorization": f"Bearer {token}"})
        assert_problem(r, 401)
    # ...while the admin token works, and an admin token is no customer token
    assert client.get("/admin/plugins", headers=admin_headers).status_code == 200
    assert_problem(client.get("/me", headers=admin_headers), 401)
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
