"""``niaga demo``: one customer's day across channels, through the real HTTP API.

Sari browses the web shop in Indonesia as a guest, signs in on the app and finds
the same cart, checks out for pickup at a Jakarta store, and collects it; a
walk-in buys at the store's till (POS) from the same stock the web shows, and a
marketplace sale is booked against the warehouse; Sari earns points and returns
one item. After each step the state of stock, cart, order and points is printed.

It runs on an embedded SQLite store in a temporary folder, with the demo
markets and catalog, in a few seconds; ``examples/omnichannel_journey.py`` runs
the same. Every call is an HTTP request to the app ``niaga serve`` runs, so this
file is also a guided tour of the API.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKET, LOCALE = "ID", "id-ID"
STORE = "id-jkt-store-gi"  # Niaga Grand Indonesia, Jakarta
WAREHOUSE = "id-jkt-wh"
SHIRT, COFFEE, TEA = "BATIK-SHIRT-M", "COFFEE-GAYO-250", "TEA-JAVA-BLACK"
SKUS = (SHIRT, COFFEE, TEA)
ADMIN_TOKEN = "adm_" + uuid.uuid4().hex  # the demo's own: the app lives only for the run
ADDRESS = {"country": "ID", "region": "DKI Jakarta", "city": "Jakarta", "postal_code": "10310",
           "line1": "Jl. M.H. Thamrin No. 1", "name": "Sari Wulandari",
           "email": "sari@example.com", "phone": "+62 811 0000 0001"}

Out = Callable[[str], None]


def table(headers: list[str], rows: list[tuple[Any, ...]]) -> list[str]:
    """Rows as aligned text lines (numbers right-aligned)."""
    cells = [[str(x) for x in row] for row in rows]
    widths = [max(len(x) for x in col) for col in zip(headers, *cells, strict=True)]
    numeric = [all(_is_number(r[i]) for r in cells) and bool(cells)
               for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(x.rjust(w) if num else x.ljust(w)
                         for x, w, num in zip(row, widths, numeric, strict=True)).rstrip()

    return [fmt(list(headers)), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)]


def _money(m: dict[str, Any]) -> str:
    return m.get("display") or f"{m['amount']} {m['currency']}"


def _is_number(text: str) -> bool:
    return text.replace(".", "", 1).replace("-", "", 1).replace(",", "").isdigit()


class Journey:
    """The HTTP client, the tokens and the printing of state between steps."""

    def __init__(self, client: Any, niaga: Any, out: Out):
        self.http, self.niaga, self.out = client, niaga, out
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        self.customer: dict[str, str] = {}
        self.step_no = 0

    # -- HTTP ------------------------------------------------------------------------
    def call(self, method: str, path: str, *, expect: int = 200, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        if r.status_code != expect:
            raise RuntimeError(f"{method} {path} answered {r.status_code}: {r.text}")
        return r.json() if r.content else None

    def as_customer(self, channel: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.customer['token']}", "Niaga-Channel": channel}

    def deliver_events(self) -> None:
        """Let the in-process relay hand the outbox to its consumers (the loyalty ledger,
        notify hooks) now, as it does a moment after each change in ``niaga serve``."""
        self.http.blocking_portal.call(self.niaga.dispatcher.drain)

    # -- printing --------------------------------------------------------------------
    def step(self, title: str) -> None:
        self.step_no += 1
        self.out("")
        self.out(f"== {self.step_no}. {title}")

    def say(self, text: str) -> None:
        self.out(f"   {text}")

    def show(self, caption: str, headers: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.out(f"   {caption}")
        for line in table(headers, rows):
            self.out(f"     {line}")

    def stock(self, skus: tuple[str, ...] = SKUS) -> list[dict[str, Any]]:
        return [level for sku in skus
                for level in self.call("GET", f"/admin/inventory/{sku}", headers=self.admin,
                                       params={"market": MARKET})]

    def show_stock(self) -> None:
        rows = [(s["sku"], s["location_id"], s["on_hand"], s["reserved"], s["available"])
                for s in self.stock()]
        self.show("stock (the one pool every channel sells from)",
                  ["sku", "location", "on hand", "reserved", "available"], rows)

    def show_cart(self, cart: dict[str, Any]) -> None:
        rows = [(li["sku"], li["quantity"], _money(li["unit_price"]),
                 _money(li["total"])) for li in cart["lines"]]
        self.show(f"cart {cart['id'][:8]}… ({cart['status']}, channels: "
                  f"{', '.join(cart['channels'])}; total {_money(cart['total'])})",
                  ["sku", "qty", "unit price", "line total"], rows)

    def show_order(self, order: dict[str, Any]) -> None:
        lines = [(li["sku"], li["quantity"], li.get("fulfilled", 0), li.get("returned", 0),
                  _money(li["total"])) for li in order["lines"]]
        pay = order["payment"]
        self.show(f"order {order['number']} ({order['status']}; channel {order['channel']}, "
                  f"touched by {', '.join(order['channels'])}; paid "
                  f"{_money(pay['captured'])}, refunded {_money(pay['refunded'])})",
                  ["sku", "qty", "fulfilled", "returned", "line total"], lines)

    def show_points(self) -> None:
        me = self.call("GET", "/me", headers=self.as_customer("app"),
                       params={"market": MARKET})
        tier = me["loyalty"]["tier"]
        self.show("points", ["customer", "balance", "lifetime", "tier"],
                  [(me["email"], me["loyalty"]["balance"], me["loyalty"]["lifetime_points"],
                    tier["name"] if tier else "-")])


def _walk(j: Journey) -> dict[str, Any]:
    """The journey itself. Returns what a test checks."""
    j.step("Sari browses the web shop in Indonesia, as a guest")
    products = j.call("GET", "/products", params={"market": MARKET, "locale": LOCALE})
    j.show(f"{len(products)} products in {MARKET} ({LOCALE}), the first four",
           ["sku", "name", "price"],
           [(p["sku"], p["name"], _money(p["price"])) for p in products[:4]])
    web = {"Niaga-Channel": "web"}
    cart = j.call("POST", "/carts", json={"market": MARKET, "channel": "web"}, expect=201)
    j.call("POST", f"/carts/{cart['id']}/lines", json={"sku": SHIRT, "quantity": 1},
           headers=web)
    cart = j.call("POST", f"/carts/{cart['id']}/lines", json={"sku": COFFEE, "quantity": 2},
                  headers=web)
    j.show_cart(cart)
    j.show_stock()

    j.step("She signs in on the app: the guest cart becomes hers, and the app adds to it")
    created = j.call("POST", "/admin/customers", headers=j.admin, expect=201,
                     json={"email": ADDRESS["email"], "name": ADDRESS["name"]})
    j.customer = {"id": created["id"], "token": created["token"]}
    app = j.as_customer("app")
    cart = j.call("POST", "/me/cart/merge", json={"cart_id": cart["id"]}, headers=app)
    cart = j.call("POST", f"/carts/{cart['id']}/lines", json={"sku": TEA, "quantity": 1},
                  headers=app)
    same = j.call("GET", "/me/cart", params={"market": MARKET}, headers=app)
    j.say(f"GET /me/cart?market={MARKET} from the app finds cart {same['id'][:8]}…, "
          f"the one the web started")
    j.show_cart(same)

    j.step("She checks out in the app, to pick up at Niaga Grand Indonesia")
    j.call("PUT", f"/carts/{cart['id']}/address", json=ADDRESS, headers=app)
    options = j.call("GET", f"/carts/{cart['id']}/delivery-options")
    pickup = next(o for o in options if o["kind"] == "pickup" and o["location_id"] == STORE)
    j.say(f"delivery options: {', '.join(o['label'] for o in options)}")
    j.call("PUT", f"/carts/{cart['id']}/delivery", json={"option_id": pickup["id"]},
           headers=app)
    order = j.call("POST", f"/carts/{cart['id']}/checkout", expect=201,
                   headers={**app, "Idempotency-Key": f"journey-{uuid.uuid4().hex}"},
                   json={"payment": {"method": "testpay", "token": "tok_ok"}})
    j.show_order(order)
    j.say(f"its units are reserved at {STORE} until she collects them")
    j.show_stock()

    j.step("A walk-in buys a batik shirt at the same store's till (POS), paid at once")
    pos = {"Niaga-Channel": "pos"}
    till = j.call("POST", "/carts", json={"market": MARKET, "channel": "pos"}, expect=201)
    j.call("POST", f"/carts/{till['id']}/lines", json={"sku": SHIRT, "quantity": 1},
           headers=pos)
    counter = next(o for o in j.call("GET", f"/carts/{till['id']}/delivery-options")
                   if o["kind"] == "pickup" and o["location_id"] == STORE)
    j.call("PUT", f"/carts/{till['id']}/delivery", json={"option_id": counter["id"]},
           headers=pos)
    sale = j.call("POST", f"/carts/{till['id']}/checkout", expect=201,
                  headers={**pos, "Idempotency-Key": f"till-{uuid.uuid4().hex}"},
                  json={"payment": {"method": "testpay", "token": "tok_ok"}})
    sale = j.call("POST", f"/admin/orders/{sale['id']}/picked-up", headers=j.admin)
    j.show_order(sale)

    j.step("A marketplace sells two bags of coffee; the warehouse books it against the pool")
    j.call("POST", f"/admin/inventory/{COFFEE}/{WAREHOUSE}/adjust", headers=j.admin,
           json={"delta": -2, "reason": "marketplace_sale"})
    web_view = j.call("GET", f"/products/{COFFEE}/availability", params={"market": MARKET})
    j.say(f"the web shop sees {web_view['available']} {COFFEE} available in {MARKET} at once")
    j.show_stock()

    j.step("The store calls Sari: her order is ready; she collects it")
    j.call("POST", f"/admin/orders/{order['id']}/ready-for-pickup", headers=j.admin)
    order = j.call("POST", f"/admin/orders/{order['id']}/picked-up", headers=j.admin)
    j.show_order(order)
    j.show_stock()

    j.step("Points: the paid order earned them, on every channel's balance")
    j.deliver_events()
    j.show_points()
    earned = j.call("GET", "/me", headers=app)["loyalty"]["balance"]

    j.step("A week later she returns one bag of coffee at the store; it goes back on the shelf")
    line = next(li for li in order["lines"] if li["sku"] == COFFEE)
    order = j.call("POST", f"/admin/orders/{order['id']}/returns", headers={
        **j.admin, "Idempotency-Key": f"return-{uuid.uuid4().hex}"},
        json={"lines": [{"line_id": line["id"], "quantity": 1}], "restock": True})
    j.deliver_events()
    order = j.call("GET", f"/orders/{order['id']}")  # the ledger's reversal is in its history
    j.show_order(order)
    j.show_points()
    j.show_stock()
    history = [(e["event"], e["detail"].get("to", "")) for e in order["history"]]
    j.show("order history", ["step", "status"], history)
    balance = j.call("GET", "/me", headers=app)["loyalty"]["balance"]
    return {"order": order, "pos_sale": sale, "stock": j.stock(), "earned": earned,
            "balance": balance, "customer_id": j.customer["id"]}


def run(out: Out = print, db: str | None = None) -> dict[str, Any]:
    """Run the journey on a fresh SQLite store (``db``: a file to keep; default a temporary
    one) and return its final state."""
    from litestar.testing import TestClient

    from kernel.api.app import create_app
    from kernel.demo import seed
    from kernel.markets import demo_markets_path, load_markets
    from kernel.runtime import Niaga
    from kernel.store.sql import SqlStore

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="niaga-demo-") as tmp:
        path = db or str(Path(tmp) / "demo.sqlite")
        markets = load_markets(demo_markets_path())

        async def prepare() -> dict[str, int]:
            store = SqlStore(path)
            await store.start()
            try:
                await store.create_schema()
                return await seed(store, markets, time.time())
            finally:
                await store.close()

        seeded = asyncio.run(prepare())
        out(f"niaga demo: SQLite store {path}; {seeded['products']} products, "
            f"{seeded['locations']} locations; markets {', '.join(markets)}")
        niaga = Niaga(SqlStore(path), markets)
        # events are relayed in the journey's own rhythm (deliver_events), so the tables
        # printed after a step never race the background relay
        niaga.dispatcher.in_process = False
        with TestClient(create_app(niaga, admin_token=ADMIN_TOKEN)) as client:
            result = _walk(Journey(client, niaga, out))
    result["seconds"] = time.perf_counter() - started
    out("")
    out(f"niaga demo: done in {result['seconds']:.1f} s")
    return result
