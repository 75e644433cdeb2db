"""`niaga audit` on a store filled through the API: clean, then each planted discrepancy found."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from litestar.testing import TestClient

from kernel.api.app import create_app
from kernel.cli import build, main, prepare
from kernel.money import Money
from kernel.services.audit import check_order
from tests.api.helpers import checkout, idem, place_order, ready_cart

ADMIN = {"Authorization": "Bearer adm_audit_test"}


@pytest.fixture
def filled(store_url: str, tmp_path: Path):
    """Orders paid, fulfilled, returned (restocked and written off), cancelled, paid by
    transfer, a POS sale and a count, all through the API; returns (db, facts)."""
    db = store_url
    asyncio.run(prepare(db, None, demo=True))
    with TestClient(create_app(build(db, None), admin_token="adm_audit_test")) as client:
        def post(path: str, body: dict, **kw) -> dict:
            r = client.post(path, json=body, headers={**ADMIN, **kw})
            assert r.status_code in (200, 201), r.text
            return r.json()

        shipped = place_order(client, "ID", {"TEA-JAVA-BLACK": 2, "COFFEE-GAYO-250": 1})
        post(f"/admin/orders/{shipped['id']}/fulfillments", {})
        line = shipped["lines"][0]
        post(f"/admin/orders/{shipped['id']}/returns",
             {"lines": [{"line_id": line["id"], "quantity": 1}], "restock": True}, **idem())
        post(f"/admin/orders/{shipped['id']}/returns",
             {"lines": [{"line_id": line["id"], "quantity": 1}], "restock": False}, **idem())
        cancelled = place_order(client, "DE", {"TOTE-CANVAS": 1})
        post(f"/admin/orders/{cancelled['id']}/cancel", {"reason": "changed mind"})
        transfer = place_order(client, "ID", {"SARONG-TENUN": 2}, method="bank-transfer")
        post(f"/admin/orders/{transfer['id']}/mark-paid", {})
        post(f"/admin/orders/{transfer['id']}/fulfillments",
             {"lines": [{"line_id": transfer["lines"][0]["id"], "quantity": 1}]})
        held = place_order(client, "US", {"COFFEE-GAYO-250": 3})  # paid, units still held
        declined = ready_cart(client, "ID", {"TEA-JAVA-BLACK": 1})
        assert checkout(client, declined["id"], token="tok_decline").status_code == 402
        r = client.get(f"/admin/orders/{held['id']}/allocations", headers=ADMIN)
        assert r.status_code == 200 and r.json(), r.text
        alloc = r.json()[0]
        stock = client.get("/admin/inventory/TEA-JAVA-BLACK", headers=ADMIN).json()
        # the row the shipped order left from (the only ID row below its seeded count)
        row = min((s for s in stock if s["location_id"].startswith("id-")),
                  key=lambda s: s["on_hand"])
        post(f"/admin/inventory/TEA-JAVA-BLACK/{row['location_id']}/adjust",
             {"delta": -1, "reason": "pos_sale"})
        r = client.put(f"/admin/inventory/TEA-JAVA-BLACK/{row['location_id']}",
                       json={"on_hand": row["on_hand"] + 5}, headers=ADMIN)
        assert r.status_code == 200, r.text
    orders = [shipped, cancelled, transfer, held]
    return db, {"shipped": shipped, "held": held, "alloc": alloc, "tea_row": row,
                "orders": len(orders)}


def _sql(db: str, query: str, *args) -> None:
    async def run() -> None:
        niaga = build(db, None)
        await niaga.start()
        try:
            await niaga.store.t.order.raw(query, *args)
        finally:
            await niaga.close()

    asyncio.run(run())


def test_audit_of_a_store_filled_through_the_api_finds_nothing(filled, capsys):
    db, facts = filled
    assert main(["audit", "--db", db]) == 0
    out = capsys.readouterr()
    assert "no discrepancies" in out.out
    assert f"{facts['orders']} orders," in out.out  # a declined checkout places none
    assert "audit: done" in out.err  # progress goes to stderr


def test_audit_names_a_tampered_order_and_a_stock_row_changed_behind_the_log(filled, capsys):
    db, facts = filled
    order = facts["shipped"]
    number = order["number"]
    # the stored total is raised by one minor unit, nothing else changes
    import msgspec

    async def tamper() -> None:
        niaga = build(db, None)
        await niaga.start()
        try:
            stored = await niaga.store.get_order(order["id"])
            stored.total = Money(stored.total.amount + 1, stored.total.currency)
            orders = niaga.store.t.order
            await orders.update({orders.doc: msgspec.json.encode(stored).decode()}).where(
                orders.id == order["id"])
            S = niaga.store.t.stock
            row = facts["tea_row"]
            await S.update({S.on_hand: S.on_hand + 3}).where(
                S.id == f"TEA-JAVA-BLACK@{row['location_id']}")
        finally:
            await niaga.close()

    asyncio.run(tamper())
    assert main(["audit", "--db", db]) == 1
    out = capsys.readouterr().out
    found = [line for line in out.splitlines() if line.startswith(("order.", "stock."))]
    assert any(line.startswith("order.totals") and number in line for line in found), out
    row_id = f"TEA-JAVA-BLACK@{facts['tea_row']['location_id']}"
    on_hand = [line for line in found if line.startswith("stock.on_hand") and row_id in line]
    assert len(on_hand) == 1, out
    # the row shows 3 more than its history says
    _, _, _, got, _, want, *_ = on_hand[0].split()
    got, want = int(got), int(want)
    assert got - want == 3, on_hand
    assert len(found) == 2, out  # nothing else is reported


def test_audit_finds_reserved_units_no_order_holds(filled, capsys):
    db, facts = filled
    alloc, held = facts["alloc"], facts["held"]
    row_id = f"{alloc['sku']}@{alloc['location_id']}"
    _sql(db, "UPDATE niaga_stock SET reserved = reserved + 2 WHERE id = {}", row_id)
    # and the held order's reservation rows vanish behind its back
    _sql(db, "DELETE FROM niaga_reservation WHERE order_id = {}", held["id"])
    assert main(["audit", "--db", db]) == 1
    found = [line.split() for line in capsys.readouterr().out.splitlines()
             if line.startswith(("order.", "stock."))]
    reserved = [f for f in found if f[0] == "stock.reserved"]
    assert [f[1] for f in reserved] == [row_id], found
    # the row's reserved (held + 2) against reservations that are now empty
    assert reserved[0][3:6] == [str(alloc["quantity"] + 2), "!=", "0"], reserved
    assert any(f[0] == "order.reservations" and f[1] == held["number"] for f in found), found


def test_audit_without_a_store_exits_2(tmp_path, capsys):
    assert main(["audit", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no store" in capsys.readouterr().err


def test_check_order_names_payment_and_line_inconsistencies(filled):
    db, facts = filled

    async def load():
        niaga = build(db, None)
        await niaga.start()
        try:
            return await niaga.store.get_order(facts["shipped"]["id"])
        finally:
            await niaga.close()

    order = asyncio.run(load())
    assert check_order(order) == []
    cur = order.currency
    order.payment.refunded = Money(order.payment.captured.amount + 1, cur)  # refunds > taken
    order.lines[0].fulfilled += 1  # a unit no fulfilment shipped
    kinds = {(d.kind, d.detail.split(" ")[0]) for d in check_order(order)}
    assert ("order.payment", "not") in kinds, kinds
    assert any(k == "order.lines" for k, _ in kinds), kinds
    assert json.dumps([d.subject for d in check_order(order)]).count(order.number) >= 2
