"""The generated OpenAPI document describes every route of the contract (API.md)."""

from __future__ import annotations

import re

# (method, path) of every route in API.md; parameter names are free, their places are not
CONTRACT = [
    ("get", "/markets"), ("get", "/products"), ("get", "/products/{sku}"),
    ("get", "/products/{sku}/availability"),
    ("post", "/carts"), ("get", "/carts/{id}"), ("post", "/carts/{id}/lines"),
    ("patch", "/carts/{id}/lines/{line_id}"), ("delete", "/carts/{id}/lines/{line_id}"),
    ("put", "/carts/{id}/address"), ("get", "/carts/{id}/delivery-options"),
    ("put", "/carts/{id}/delivery"), ("put", "/carts/{id}/loyalty"),
    ("get", "/carts/{id}/payment-methods"), ("post", "/carts/{id}/checkout"),
    ("get", "/orders/{id}"), ("post", "/webhooks/{plugin}"),
    ("get", "/me"), ("get", "/me/cart"), ("post", "/me/cart/merge"), ("get", "/me/orders"),
    ("put", "/admin/products/{sku}"), ("delete", "/admin/products/{sku}"),
    ("post", "/admin/customers"), ("get", "/admin/customers/{id}/export"),
    ("delete", "/admin/customers/{id}"), ("put", "/admin/inventory/{sku}/{location_id}"),
    ("post", "/admin/inventory/{sku}/{location_id}/adjust"),
    ("post", "/admin/orders/{id}/mark-paid"), ("post", "/admin/orders/{id}/capture"),
    ("post", "/admin/orders/{id}/fulfillments"), ("post", "/admin/orders/{id}/cancel"),
    ("post", "/admin/orders/{id}/returns"), ("get", "/admin/plugins"),
    ("get", "/admin/reports/sales"),
]


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def test_openapi_lists_every_contract_route(client):
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    described = {(method.lower(), _shape(path))
                 for path, item in doc["paths"].items() for method in item
                 if method.lower() in ("get", "post", "put", "patch", "delete")}
    missing = [(m, p) for m, p in CONTRACT if (m, _shape(p)) not in described]
    assert missing == []


def test_openapi_documents_headers_and_security(client):
    doc = client.get("/schema/openapi.json").json()
    paths = {_shape(p): item for p, item in doc["paths"].items()}
    checkout = paths["/carts/{}/checkout"]["post"]
    headers = {p["name"].lower() for p in checkout.get("parameters", []) if p["in"] == "header"}
    assert "idempotency-key" in headers
    for path in ("/admin/orders/{}/capture", "/admin/orders/{}/returns"):
        params = paths[path]["post"].get("parameters", [])
        assert "idempotency-key" in {p["name"].lower() for p in params if p["in"] == "header"}
    assert "bearer" in doc["components"]["securitySchemes"]
    assert paths["/admin/plugins"]["get"].get("security") == [{"bearer": []}]
