"""Small builders and checks shared by the HTTP API tests.

Expectations are computed here from inputs (ISO 4217 digits, tax formulas),
never copied from a server response.
"""

from __future__ import annotations

import csv
import tomllib
import uuid
from decimal import Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

import kernel
import plugins.tax

PROBLEM = "application/problem+json"

# ISO 4217 minor-unit digits of the demo currencies (an independent oracle).
DIGITS = {"IDR": 2, "EUR": 2, "USD": 2, "JPY": 0}

ADDRESSES: dict[str, dict[str, str]] = {
    "ID": {"country": "ID", "region": "DKI Jakarta", "city": "Jakarta", "postal_code": "10110",
           "line1": "Jl. Merdeka No. 1", "name": "Budi Santoso", "email": "budi@example.com",
           "phone": "+62 812 0000 0000"},
    "DE": {"country": "DE", "region": "Berlin", "city": "Berlin", "postal_code": "10115",
           "line1": "Invalidenstraße 1", "name": "Erika Mustermann",
           "email": "erika@example.com"},
    "US": {"country": "US", "region": "CA", "city": "San Francisco", "postal_code": "94103",
           "line1": "1 Market St", "name": "Jane Doe", "email": "jane@example.com"},
    "JP": {"country": "JP", "region": "東京都", "city": "千代田区", "postal_code": "100-0001",
           "line1": "千代田1-1", "name": "山田太郎", "email": "taro@example.com"},
}


# -- the demo data (inputs) ------------------------------------------------------------

DATA = Path(kernel.__file__).parent / "data"


@cache
def markets_toml() -> dict[str, Any]:
    return tomllib.loads((DATA / "markets.toml").read_text(encoding="utf-8"))["markets"]


@cache
def catalog_toml() -> dict[str, Any]:
    return tomllib.loads((DATA / "catalog.toml").read_text(encoding="utf-8"))


@cache
def us_state_rates() -> dict[str, tuple[str, bool]]:
    """state -> (percent, shipping taxable), from the us-sales-tax plugin's data file."""
    path = Path(plugins.tax.__file__).parent / "data" / "us_state_rates.csv"
    with path.open(encoding="utf-8") as fh:
        return {row["state"]: (row["rate"], row["shipping_taxable"] == "true")
                for row in csv.DictReader(fh)}


def catalog_product(sku: str) -> dict[str, Any]:
    return next(p for p in catalog_toml()["products"] if p["sku"] == sku)


def seeded_stock(sku: str, market: str) -> dict[str, int]:
    """location id -> on_hand as the demo seeds it, for the market's locations.

    The demo seeds a stock row only where a location serves a market the product is priced in,
    or where the product's stock table names the location.
    """
    cat = catalog_toml()
    product = catalog_product(sku)
    default = cat["demo"]["default_on_hand"]
    overrides = product.get("stock", {})
    return {loc["id"]: (overrides.get(loc["id"], default)
                        if any(m in product["prices"] for m in loc["markets"])
                        or loc["id"] in overrides else 0)
            for loc in cat["locations"] if market in loc["markets"]}


def vat_rate(market: str, tax_class: str) -> str:
    return markets_toml()[market]["plugins"]["vat"]["rates"][tax_class]


# -- money ---------------------------------------------------------------------------


def minor(m: dict[str, Any]) -> int:
    """A wire Money as integer minor units; asserts it has exactly the currency's digits."""
    assert_money(m)
    return int(Decimal(m["amount"]).scaleb(DIGITS[m["currency"]]))


def assert_money(m: dict[str, Any], currency: str | None = None) -> None:
    assert set(m) >= {"amount", "currency"}, m
    if currency is not None:
        assert m["currency"] == currency, m
    amount, digits = m["amount"], DIGITS[m["currency"]]
    assert isinstance(amount, str), m
    if digits == 0:
        assert "." not in amount and amount.lstrip("-").isdigit(), m
    else:
        whole, _, frac = amount.lstrip("-").partition(".")
        assert whole.isdigit() and len(frac) == digits and frac.isdigit(), m


def fmt(minor_units: int, currency: str) -> str:
    digits = DIGITS[currency]
    return str(Decimal(minor_units).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)))


def tax_on(amount_minor: int, rate_percent: str, *, included: bool) -> int:
    """Tax on an amount, half-up: extracted from a gross price or added to a net one."""
    rate = Fraction(Decimal(rate_percent))
    factor = rate / (100 + rate) if included else rate / 100
    exact = amount_minor * factor
    floor = exact.numerator // exact.denominator
    rest = exact - floor
    return floor + 1 if rest >= Fraction(1, 2) else floor


# -- shapes and invariants --------------------------------------------------------------


CART_FIELDS = {"id", "market", "channel", "currency", "customer_id", "status", "version",
               "lines", "address", "delivery", "loyalty", "subtotal", "discount_total",
               "shipping_total", "tax_total", "total", "prices_include_tax", "adjustments"}
LINE_FIELDS = {"id", "sku", "name", "quantity", "unit_price", "subtotal", "discount", "tax",
               "total"}
ORDER_FIELDS = {"id", "number", "cart_id", "market", "channel", "customer_id", "currency",
                "status", "lines", "subtotal", "discount_total", "shipping_total",
                "tax_total", "total", "prices_include_tax", "payment", "fulfillments",
                "history", "created_at", "adjustments"}


def assert_totals(doc: dict[str, Any]) -> None:
    """The totals invariant of API.md, and adjustments naming a plugin for every amount."""
    cur = doc["currency"]
    for name in ("subtotal", "discount_total", "shipping_total", "tax_total", "total"):
        assert_money(doc[name], cur)
    sub, disc = minor(doc["subtotal"]), minor(doc["discount_total"])
    ship, tax, total = minor(doc["shipping_total"]), minor(doc["tax_total"]), minor(doc["total"])
    expected = sub - disc + ship + (0 if doc["prices_include_tax"] else tax)
    rounding = sum(minor(a["amount"]) for a in doc["adjustments"] if a["kind"] == "rounding")
    assert total == expected + rounding, doc
    assert sub == sum(minor(li["subtotal"]) for li in doc["lines"]), doc
    for li in doc["lines"]:
        assert set(li) >= LINE_FIELDS, li
        assert minor(li["subtotal"]) == minor(li["unit_price"]) * li["quantity"], li
    by_kind: dict[str, int] = {}
    for adj in doc["adjustments"]:
        assert set(adj) >= {"source", "kind", "label", "amount"}, adj
        assert isinstance(adj["source"], str) and adj["source"], adj
        assert_money(adj["amount"], cur)
        by_kind[adj["kind"]] = by_kind.get(adj["kind"], 0) + minor(adj["amount"])
    plugins = set(markets_toml()[doc["market"]]["plugins"])
    for adj in doc["adjustments"]:  # the plugin behind every amount is one the market runs
        assert adj["source"] in plugins, (adj, plugins)
    assert by_kind.get("tax", 0) == tax, doc
    assert by_kind.get("shipping", 0) == ship, doc
    assert by_kind.get("discount", 0) == disc, doc
    if tax:
        assert any(a["kind"] == "tax" for a in doc["adjustments"]), doc
    if ship:
        assert any(a["kind"] == "shipping" for a in doc["adjustments"]), doc


def assert_cart(cart: dict[str, Any]) -> dict[str, Any]:
    assert set(cart) >= CART_FIELDS, set(CART_FIELDS) - set(cart)
    assert cart["status"] in ("open", "checked_out", "merged")
    assert_totals(cart)
    return cart


def assert_order(order: dict[str, Any]) -> dict[str, Any]:
    assert set(order) >= ORDER_FIELDS, set(ORDER_FIELDS) - set(order)
    assert set(order["payment"]) >= {"method", "status", "authorized", "captured", "refunded"}
    assert_totals(order)
    return order


def assert_problem(resp: Any, status: int | tuple[int, ...], field: str | None = None
                   ) -> dict[str, Any]:
    """An RFC 9457 problem with the status (or one of them) and, if given, naming ``field``."""
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status_code in statuses, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers
    body = resp.json()
    assert body["status"] == resp.status_code, body
    assert isinstance(body.get("title"), str) and body["title"], body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        # validation errors name the field in errors: [{field, message}]
        assert any(f == field or f.startswith(field + ".") or f.startswith(field + "[")
                   for f in fields), body
        for e in body["errors"]:
            assert set(e) >= {"field", "message"}, body
    return body


# -- builders -------------------------------------------------------------------------


def new_cart(client: TestClient, market: str = "ID", channel: str = "web",
             headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = client.post("/carts", json={"market": market, "channel": channel}, headers=headers)
    assert r.status_code == 201, r.text
    return assert_cart(r.json())


def add_line(client: TestClient, cart_id: str, sku: str, quantity: int) -> dict[str, Any]:
    r = client.post(f"/carts/{cart_id}/lines", json={"sku": sku, "quantity": quantity})
    assert r.status_code == 200, r.text
    return assert_cart(r.json())


def set_address(client: TestClient, cart_id: str, address: dict[str, Any]) -> dict[str, Any]:
    r = client.put(f"/carts/{cart_id}/address", json=address)
    assert r.status_code == 200, r.text
    return assert_cart(r.json())


def delivery_options(client: TestClient, cart_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/carts/{cart_id}/delivery-options")
    assert r.status_code == 200, r.text
    return r.json()


def set_delivery(client: TestClient, cart_id: str, option_id: str) -> dict[str, Any]:
    r = client.put(f"/carts/{cart_id}/delivery", json={"option_id": option_id})
    assert r.status_code == 200, r.text
    return assert_cart(r.json())


def ready_cart(client: TestClient, market: str, sku_qtys: dict[str, int] | list[tuple[str, int]],
               delivery: str = "ship", *, address: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None, option_id: str | None = None,
               channel: str = "web") -> dict[str, Any]:
    """A cart with lines, an address and a delivery option chosen; returns the cart json."""
    cart = new_cart(client, market, channel, headers)
    items = sku_qtys.items() if isinstance(sku_qtys, dict) else sku_qtys
    for sku, qty in items:
        cart = add_line(client, cart["id"], sku, qty)
    cart = set_address(client, cart["id"], address or ADDRESSES[market])
    options = [o for o in delivery_options(client, cart["id"]) if o["kind"] == delivery]
    # prefer the first-party carriers the tests' expectations are written for
    options.sort(key=lambda o: o["carrier"] not in ("flat-rate", "store-pickup"))
    if option_id is not None:
        options = [o for o in options if o["id"] == option_id]
    assert options, f"no {delivery} option for {market} cart"
    return set_delivery(client, cart["id"], options[0]["id"])


def checkout(client: TestClient, cart_id: str, method: str = "testpay",
             token: str | None = "tok_ok", key: str | None = None, **extra: Any) -> Any:
    payment: dict[str, Any] = {"method": method, **extra}
    if token is not None and method == "testpay":
        payment["token"] = token
    headers = {"Idempotency-Key": key or f"key-{uuid.uuid4().hex}"}
    return client.post(f"/carts/{cart_id}/checkout", json={"payment": payment}, headers=headers)


def place_order(client: TestClient, market: str, sku_qtys: dict[str, int],
                method: str = "testpay", delivery: str = "ship",
                headers: dict[str, str] | None = None, token: str = "tok_ok",
                **kw: Any) -> dict[str, Any]:
    cart = ready_cart(client, market, sku_qtys, delivery, headers=headers, **kw)
    r = checkout(client, cart["id"], method=method, token=token)
    assert r.status_code == 201, r.text
    return assert_order(r.json())


def availability(client: TestClient, sku: str, market: str) -> dict[str, Any]:
    r = client.get(f"/products/{sku}/availability", params={"market": market})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["available"] == sum(loc["available"] for loc in body["locations"])
    return body


def available_at(client: TestClient, sku: str, market: str, location_id: str) -> int:
    locs = availability(client, sku, market)["locations"]
    return next(loc["available"] for loc in locs if loc["id"] == location_id)


def stock_level(client: TestClient, admin: dict[str, str], sku: str,
                location_id: str) -> dict[str, Any]:
    """on_hand and reserved at a location, read by a +1/-1 correction pair (net zero)."""
    path = f"/admin/inventory/{sku}/{location_id}/adjust"
    r = client.post(path, json={"delta": 1, "reason": "correction"}, headers=admin)
    assert r.status_code == 200, r.text
    r = client.post(path, json={"delta": -1, "reason": "correction"}, headers=admin)
    assert r.status_code == 200, r.text
    level = r.json()
    assert level["available"] == level["on_hand"] - level["reserved"]
    return level


def idem(key: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key or f"key-{uuid.uuid4().hex}"}


def niaga_of(client: TestClient) -> Any:
    """The wired :class:`kernel.runtime.Niaga` behind the app (for things HTTP cannot reach)."""
    return client.app.dependencies["niaga"].dependency()
