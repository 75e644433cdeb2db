"""`niaga report sales` on a SQLite store the test filled through the API."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar.testing import TestClient

from kernel.api.app import create_app
from kernel.cli import build, main, prepare
from tests.api.helpers import fmt, minor, place_order

NIAGA = str(Path(sys.executable).with_name("niaga"))
T = 1_767_225_600  # 2026-01-01T00:00:00Z
HOUR = 3700
END = T + 6 * HOUR


def _sections(out: str) -> dict[str, list[list[str]]]:
    """Each table as title -> data rows split on whitespace. A table is: title, header,
    a line of dashes, rows up to a blank line."""
    lines = out.splitlines()
    sections = {}
    for i, line in enumerate(lines):
        if i >= 2 and line.strip() and set(line) <= {"-", " "}:
            rows = []
            for row in lines[i + 1:]:
                if not row.strip():
                    break
                rows.append(row.split())
            sections[lines[i - 2].split(" (")[0]] = rows
    return sections


@pytest.fixture
def shop(tmp_path: Path):
    db = str(tmp_path / "shop.sqlite")
    asyncio.run(prepare(db, None, demo=True))
    niaga = build(db, None)
    admin = {"Authorization": "Bearer adm_cli_test"}
    with TestClient(create_app(niaga, admin_token="adm_cli_test")) as client:
        yield db, niaga, client, admin


def test_report_sales_prints_the_figures_of_the_orders_placed(shop, capsys):
    db, niaga, client, admin = shop
    now = {"t": 0.0}
    niaga.clock = lambda: now["t"]
    tokens = {}
    for who in ("ayu", "bima"):
        r = client.post("/admin/customers", json={"email": f"{who}@example.com"}, headers=admin)
        assert r.status_code in (200, 201), r.text
        tokens[who] = {"Authorization": f"Bearer {r.json()['token']}"}
    placed: list[tuple[dict, str | None]] = []

    def at(t: float, market: str, items: dict[str, int], who: str | None, **kw) -> dict:
        now["t"] = float(t)
        order = place_order(client, market, items, headers=tokens.get(who), **kw)
        return order

    at(T - HOUR, "ID", {"SARONG-TENUN": 1}, "bima")  # before the period
    placed.append((at(T, "ID", {"TEA-JAVA-BLACK": 2}, "ayu"), "ayu"))
    placed.append((at(T + HOUR, "ID", {"COFFEE-GAYO-250": 1}, "ayu", channel="pos"), "ayu"))
    placed.append((at(T + 2 * HOUR, "DE", {"TOTE-CANVAS": 1}, "bima"), "bima"))
    placed.append((at(T + 3 * HOUR, "US", {"COFFEE-GAYO-250": 3}, None, channel="app"), None))
    placed.append((at(T + 4 * HOUR, "ID", {"BATIK-SHIRT-L": 1}, None), None))
    at(T + 5 * HOUR, "ID", {"SARONG-TENUN": 1}, "bima", method="bank-transfer")  # unpaid
    at(END, "ID", {"TEA-JAVA-BLACK": 1}, "bima")  # at `to`: outside

    to = datetime.fromtimestamp(END, UTC).isoformat()
    assert main(["report", "sales", "--db", db, "--from", "2026-01-01", "--to", to]) == 0
    out = capsys.readouterr().out
    got = _sections(out)

    want: dict[str, dict[tuple[str, ...], list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0]))
    for order, _ in placed:
        total = minor(order["total"])
        for title, key in (("By channel", (order["channel"],)),
                           ("By market", (order["market"],)),
                           ("By channel and market", (order["channel"], order["market"])),
                           ("Totals", ())):
            w = want[title][(*key, order["currency"])]
            w[0] += 1
            w[1] += total
    for title, groups in want.items():
        rows = {tuple(r[:-5]): r[-5:] for r in got[title]}
        assert set(rows) == set(groups), (title, out)
        for key, (count, revenue) in groups.items():
            cur = key[-1]
            aov = (2 * revenue + count) // (2 * count)
            assert rows[key] == [str(count), fmt(revenue, cur), fmt(0, cur), fmt(revenue, cur),
                                 fmt(aov, cur)], (title, key, out)

    known = [who for _, who in placed if who]
    customers = set(known)
    repeat = sum(known.count(w) >= 2 for w in customers)
    channels = {w: {o["channel"] for o, who in placed if who == w} for w in customers}
    multi = sum(len(c) >= 2 for c in channels.values())
    assert (len(customers), repeat, multi) == (2, 1, 1)
    assert got["Customers"] == [[str(len(customers)), str(repeat),
                                 f"{repeat / len(customers):.1%}", str(multi),
                                 f"{multi / len(customers):.1%}",
                                 str(len(placed) - len(known)), "0"]], out


def test_report_sales_rejects_a_bad_date_naming_the_option(tmp_path, capsys):
    db = str(tmp_path / "none.sqlite")
    assert main(["report", "sales", "--db", db, "--from", "yesterday"]) == 2
    assert "--from" in capsys.readouterr().err
    assert main(["report", "sales", "--db", db, "--from", "2026-02-01",
                 "--to", "2026-01-01"]) == 2
    assert "--to" in capsys.readouterr().err
    assert main(["report", "sales", "--db", db]) == 1  # no store there; none is made
    assert "--db" in capsys.readouterr().err and not Path(db).exists()
    # the installed console script, end to end
    run = subprocess.run([NIAGA, "report", "sales", "--to", "31/01/2026", "--db", db],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--to" in run.stderr, run


def test_report_sales_on_an_empty_store(shop, capsys):
    db = shop[0]
    assert main(["report", "sales", "--db", db]) == 0
    got = _sections(capsys.readouterr().out)
    assert got["Totals"] == [] and got["Customers"] == [["0", "0", "-", "0", "-", "0", "0"]]
