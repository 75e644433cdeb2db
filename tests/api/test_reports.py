"""GET /admin/reports/sales on every store: figures computed from the orders the test placed."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from kernel.services import reports

from .helpers import (
    ADDRESSES,
    DIGITS,
    assert_order,
    assert_problem,
    catalog_product,
    checkout,
    delivery_options,
    fmt,
    idem,
    markets_toml,
    minor,
    new_cart,
    niaga_of,
    place_order,
    set_address,
    set_delivery,
)

T = 1_767_225_600  # 2026-01-01T00:00:00Z, the start of the period
HOUR = 3700  # orders this far apart stay out of each other's card-velocity window
END = T + 10 * HOUR  # the end of the period (exclusive)
PATH = "/admin/reports/sales"


def _customer(client, admin_headers, email: str) -> dict[str, str]:
    r = client.post("/admin/customers", json={"email": email}, headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _catalog_subtotal(market: str, items: dict[str, int]) -> int:
    """The demo catalog's prices × quantities, in minor units of the market's currency."""
    digits = DIGITS[markets_toml()[market]["currency"]]
    return sum(int(Decimal(catalog_product(sku)["prices"][market]).scaleb(digits)) * qty
               for sku, qty in items.items())


class Placed:
    """What the test placed: the inputs its expectations are computed from."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, order: dict[str, Any], customer: str | None, *, counted: bool = True,
            refunded: int = 0, touched: int = 1) -> None:
        self.rows.append({"channel": order["channel"], "market": order["market"],
                          "currency": order["currency"], "total": minor(order["total"]),
                          "refunded": refunded, "customer": customer, "counted": counted,
                          "touched": touched})

    def expected(self) -> dict[str, Any]:
        groups: dict[str, dict[tuple, list[int]]] = {
            "channel": defaultdict(lambda: [0, 0, 0]), "market": defaultdict(lambda: [0, 0, 0]),
            "channel_market": defaultdict(lambda: [0, 0, 0]), "all": defaultdict(lambda: [0, 0, 0])}
        per_customer: dict[str, list[str]] = defaultdict(list)
        guests = cross = 0
        for r in self.rows:
            if not r["counted"]:
                continue
            keys = {"channel": r["channel"], "market": r["market"],
                    "channel_market": f"{r['channel']}/{r['market']}", "all": "all"}
            for name, group in keys.items():
                g = groups[name][(group, r["currency"])]
                g[0] += 1
                g[1] += r["total"]
                g[2] += r["refunded"]
            cross += r["touched"] > 1
            if r["customer"] is None:
                guests += 1
            else:
                per_customer[r["customer"]].append(r["channel"])
        return {"groups": groups, "customers": len(per_customer),
                "repeat": sum(len(v) >= 2 for v in per_customer.values()),
                "multichannel": sum(len(set(v)) >= 2 for v in per_customer.values()),
                "guests": guests, "cross": cross}


def _check_group(got: dict[str, Any], count: int, gross: int, refunded: int) -> None:
    cur = got["currency"]
    assert got["orders"] == count, got
    assert minor(got["gross"]) == gross and minor(got["refunded"]) == refunded, got
    assert minor(got["revenue"]) == gross - refunded, got
    net = gross - refunded  # AOV half-up: floor(net / n + 1/2)
    assert got["aov"] == {"amount": fmt((2 * net + count) // (2 * count), cur),
                          "currency": cur}, got


def _check(body: dict[str, Any], placed: Placed) -> None:
    exp = placed.expected()
    for name, key in (("channel", "by_channel"), ("market", "by_market"),
                      ("channel_market", "by_channel_market"), ("all", "totals")):
        want = exp["groups"][name]
        got = {(g["group"], g["currency"]): g for g in body[key]}
        assert set(got) == set(want), (key, body[key])
        for k, (count, gross, refunded) in want.items():
            _check_group(got[k], count, gross, refunded)
    c = body["customers"]
    assert c["customers"] == exp["customers"]
    assert c["repeat_customers"] == exp["repeat"]
    assert c["multichannel_customers"] == exp["multichannel"]
    assert c["guest_orders"] == exp["guests"]
    assert c["repeat_rate"] == pytest.approx(exp["repeat"] / exp["customers"], abs=1e-4)
    assert c["multichannel_share"] == pytest.approx(exp["multichannel"] / exp["customers"],
                                                    abs=1e-4)
    assert body["cross_channel_orders"] == exp["cross"]
    assert body["truncated"] is False


def test_sales_report_over_a_period(client, admin_headers, monkeypatch):
    niaga = niaga_of(client)
    now = {"t": float(T - HOUR)}
    monkeypatch.setattr(niaga, "clock", lambda: now["t"])
    a = _customer(client, admin_headers, "ayu@example.com")
    b = _customer(client, admin_headers, "bima@example.com")
    c = _customer(client, admin_headers, "citra@example.com")
    d = _customer(client, admin_headers, "dewi@example.com")
    e = _customer(client, admin_headers, "eka@example.com")
    inside, before = Placed(), Placed()

    def at(t: float, market: str, items: dict[str, int], **kw: Any) -> dict[str, Any]:
        now["t"] = float(t)
        order = place_order(client, market, items, **kw)
        assert order["created_at"] == pytest.approx(t)
        assert minor(order["subtotal"]) == _catalog_subtotal(market, items)
        return order

    # before the period: a guest web order (and a would-be repeat for A, outside)
    before.add(at(T - HOUR, "ID", {"TEA-JAVA-BLACK": 1}), None)
    before.add(at(T - 1, "ID", {"COFFEE-GAYO-250": 1}, headers=a), "a")
    # exactly at `from`: counted. A buys on the web and in the app: repeat and multichannel
    inside.add(at(T, "ID", {"TEA-JAVA-BLACK": 2}, headers=a), "a")
    inside.add(at(T + HOUR, "ID", {"COFFEE-GAYO-250": 1}, headers=a, channel="app"), "a")
    # B buys on the web in two markets (two currencies): repeat, not multichannel
    inside.add(at(T + 2 * HOUR, "ID", {"TOTE-CANVAS": 1}, headers=b), "b")
    inside.add(at(T + 3 * HOUR, "DE", {"TOTE-CANVAS": 1}, headers=b), "b")
    # C: one marketplace order in the US; an unpaid bank transfer in another channel
    inside.add(at(T + 4 * HOUR, "US", {"COFFEE-GAYO-250": 2}, headers=c,
                  channel="marketplace"), "c")
    inside.add(at(T + 5 * HOUR, "ID", {"SARONG-TENUN": 1}, headers=c, channel="social",
                  method="bank-transfer"), "c", counted=False)
    # D: a pos order that is cancelled (refunded in full): not counted
    cancelled = at(T + 6 * HOUR, "ID", {"TOTE-CANVAS": 1}, headers=d, channel="pos")
    r = client.post(f"/admin/orders/{cancelled['id']}/cancel", json={}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    inside.add(cancelled, "d", counted=False)
    # a guest pos order, shipped, one of two units returned: revenue net of the refund
    guest = at(T + 7 * HOUR, "ID", {"BATIK-SHIRT-L": 2}, channel="pos")
    r = client.post(f"/admin/orders/{guest['id']}/fulfillments", json={}, headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    line = guest["lines"][0]
    r = client.post(f"/admin/orders/{guest['id']}/returns",
                    json={"lines": [{"line_id": line["id"], "quantity": 1}], "restock": True},
                    headers={**admin_headers, **idem()})
    assert r.status_code == 200, r.text
    unit = minor(line["total"]) // line["quantity"]  # no discount: an even split
    assert minor(r.json()["payment"]["refunded"]) == unit
    inside.add(guest, None, refunded=unit)
    # E: a web cart continued in the app, one order: a cross-channel order, not multichannel
    now["t"] = float(T + 8 * HOUR)
    cart = new_cart(client, "ID", "web", headers=e)
    r = client.post(f"/carts/{cart['id']}/lines", json={"sku": "COOKBOOK-NUSANTARA",
                                                        "quantity": 1},
                    headers={"Niaga-Channel": "app"})
    assert r.status_code == 200, r.text
    set_address(client, cart["id"], ADDRESSES["ID"])
    ship = next(o for o in delivery_options(client, cart["id"]) if o["kind"] == "ship")
    set_delivery(client, cart["id"], ship["id"])
    r = checkout(client, cart["id"])
    assert r.status_code == 201, r.text
    cross = assert_order(r.json())
    assert cross["channel"] == "web"
    inside.add(cross, "e", touched=2)
    # exactly at `to`: outside
    before.add(at(END, "ID", {"TEA-JAVA-BLACK": 1}, headers=b), "b")

    params = {"from": "2026-01-01", "to": "2026-01-01T10:16:40+00:00"}  # END, an offset
    assert reports.parse_instant(params["to"], "to") == END
    r = client.get(PATH, params=params, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == T and body["to"] == END
    _check(body, inside)
    exp = inside.expected()
    assert (exp["customers"], exp["repeat"], exp["multichannel"]) == (4, 2, 1)  # a,b,c,e
    # group_by picks the list that `groups` repeats (existing clients read `groups`)
    assert body["group_by"] == "channel" and body["groups"] == body["by_channel"]
    for group_by in ("market", "channel_market"):
        r = client.get(PATH, params={**params, "group_by": group_by}, headers=admin_headers)
        assert r.status_code == 200 and r.json()["groups"] == body[f"by_{group_by}"]

    # the same figures when the period is read in pages of two orders
    monkeypatch.setattr(reports, "PAGE", 2)
    assert client.get(PATH, params=params, headers=admin_headers).json() == body
    monkeypatch.setattr(reports, "PAGE", 5000)

    # before `from` only (to is exclusive, so the order at exactly T is not in it)
    r = client.get(PATH, params={"to": "2026-01-01T00:00:00"}, headers=admin_headers)
    assert r.status_code == 200
    early = Placed()
    early.rows = [row for row in before.rows if row["customer"] != "b"]
    body = r.json()
    assert {g["group"] for g in body["totals"]} == {"all"}
    _check(body, early)


def test_sales_report_rejects_bad_input(client, admin_headers):
    for params, field in (({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"),
                          ({"from": "2026-02-01", "to": "2026-01-01"}, "to"),
                          ({"from": "2026-01-01", "to": "2026-01-01"}, "to"),
                          ({"group_by": "colour"}, "group_by"),
                          ({"from": "2026-01-01" * 10}, "from")):
        assert_problem(client.get(PATH, params=params, headers=admin_headers), (400, 422),
                       field)
    assert_problem(client.get(PATH), 401)
    r = client.get(PATH, headers=admin_headers)  # nothing sold yet: empty, not an error
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totals"] == [] and body["customers"]["customers"] == 0
    assert body["customers"]["repeat_rate"] is None


# -- paging (no store: list_orders' contract, with ties at one timestamp) --------------------


class _Orders:
    """list_orders over in-memory orders: newest first, [since, until); orders that share a
    timestamp come in an order that changes from read to read (as a database may)."""

    def __init__(self, stamps: list[float], shift: int = 0):
        self.orders = [SimpleNamespace(id=f"o{i}", created_at=t) for i, t in enumerate(stamps)]
        self.reads = shift

    async def list_orders(self, *, since=None, until=None, limit=1000, customer_id=None):
        self.reads += 1
        found = [o for o in self.orders if (since is None or o.created_at >= since)
                 and (until is None or o.created_at < until)]
        n = len(self.orders)
        found.sort(key=lambda o: (-o.created_at, (int(o.id[1:]) + self.reads) % n))
        return found[:limit]


def _read(store: _Orders, page: int, monkeypatch) -> tuple[list[str], bool]:
    monkeypatch.setattr(reports, "PAGE", page)

    async def run() -> tuple[list[str], bool]:
        ids, truncated = [], False
        async for chunk, cut in reports._pages(SimpleNamespace(store=store), None, None):
            ids += [o.id for o in chunk]
            truncated = truncated or cut
        return ids, truncated

    return asyncio.run(run())


@pytest.mark.parametrize("shift", range(3))
def test_paging_counts_every_order_once(monkeypatch, shift):
    stamps = [100.0, 100.0, 101.0, 102.0, 102.0, 103.0, 104.0, 104.0, 105.0]
    store = _Orders(stamps, shift)
    ids, truncated = _read(store, 3, monkeypatch)
    assert sorted(ids) == sorted(o.id for o in store.orders) and not truncated
    store = _Orders(stamps, shift)
    ids, _ = _read(store, 5000, monkeypatch)
    assert len(ids) == len(stamps) and store.reads == shift + 1  # one read, normally


@pytest.mark.parametrize("shift", range(4))
def test_paging_flags_what_it_cannot_page_through(monkeypatch, shift):
    # more orders at one instant than a page holds: never counted twice, and flagged
    store = _Orders([100.0, 100.0, 100.0, 99.0], shift)
    ids, truncated = _read(store, 2, monkeypatch)
    assert len(ids) == len(set(ids)) and truncated
