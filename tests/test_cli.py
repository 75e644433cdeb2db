"""The `niaga` command: markets check, plugins, and serve keeping its SQLite data."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from pathlib import Path

from kernel.cli import main
from kernel.markets import demo_markets_path
from tests.serving import spawn_niaga, wait_up


def test_markets_check_accepts_the_demo_file(capsys):
    assert main(["markets", "check", str(demo_markets_path())]) == 0
    out = capsys.readouterr().out
    assert "OK (4 markets)" in out and "us-sales-tax" in out


def test_markets_check_names_market_key_and_reason(tmp_path, capsys):
    bad = tmp_path / "markets.toml"
    bad.write_text("""
[markets.ID]
name = "Indonesia"
currency = "XXQ"
locales = ["id-ID"]
prices_include_tax = true

[markets.DE]
name = "Germany"
currency = "EUR"
locales = ["de-DE"]
prices_include_tax = true
[markets.DE.plugins.vat]
rates = { standard = "nineteen" }
[markets.DE.plugins.no-such-plugin]
""")
    assert main(["markets", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "markets.ID.currency" in err
    # an unknown currency stops market ID; DE's plugins are then checked one by one
    assert main(["markets", "check", str(_fix_currency(bad))]) == 1
    err = capsys.readouterr().err
    assert "markets.DE.plugins.vat: rates.standard:" in err and "'nineteen'" in err
    assert "markets.DE.plugins.no-such-plugin: no installed plugin" in err


def _fix_currency(path: Path) -> Path:
    path.write_text(path.read_text().replace('"XXQ"', '"IDR"'))
    return path


def test_markets_check_rejects_unknown_keys(tmp_path, capsys):
    bad = tmp_path / "m.toml"
    bad.write_text('[markets.JP]\nname="Japan"\ncurrency="JPY"\nlocales=["ja-JP"]\n'
                   'prices_include_tax=true\npayment_windw_hours=3\n')
    assert main(["markets", "check", str(bad)]) == 1
    assert "payment_windw_hours" in capsys.readouterr().err


def test_plugins_lists_first_party_plugins_with_families(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for name, family in [("vat", "tax"), ("us-sales-tax", "tax"), ("testpay", "payment"),
                         ("bank-transfer", "payment"), ("flat-rate", "carrier"),
                         ("store-pickup", "carrier")]:
        assert re.search(rf"^{re.escape(name)}\s+\S+\s+{family}\s", out, re.M), name


def _serve(cwd: Path, *args: str, token: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != "NIAGA_ADMIN_TOKEN"}
    if token:
        env["NIAGA_ADMIN_TOKEN"] = token
    base, proc = spawn_niaga(args, cwd=cwd, env=env)
    wait_up(base, proc)
    return proc, base


def _stop(proc) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return out


def _json(url: str, body: dict | None = None, method: str = "GET", headers=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read() or b"null")


def test_serve_keeps_sqlite_data_across_restarts_and_prints_a_token(tmp_path):
    proc, base = _serve(tmp_path)
    cart = _json(base + "/carts", {"market": "JP", "channel": "app"}, "POST")
    _json(f"{base}/carts/{cart['id']}/lines", {"sku": "TEA-JAVA-BLACK", "quantity": 2}, "POST")
    out = _stop(proc)
    token = re.search(r"admin token \(set NIAGA_ADMIN_TOKEN to choose one\): (\S+)", out)
    assert token, out
    assert "loaded demo data: 12 products" in out

    proc, base = _serve(tmp_path)  # same directory, same ./niaga.sqlite
    try:
        again = _json(f"{base}/carts/{cart['id']}")
        assert [(li["sku"], li["quantity"]) for li in again["lines"]] == [("TEA-JAVA-BLACK", 2)]
        assert again["total"]["currency"] == "JPY" and "." not in again["total"]["amount"]
    finally:
        out = _stop(proc)
    assert "loaded demo data" not in out  # not seeded twice
    new_token = re.search(r"admin token .*: (\S+)", out).group(1)
    assert new_token != token.group(1)  # generated per run when NIAGA_ADMIN_TOKEN is unset


def test_serve_no_demo_and_env_admin_token(tmp_path):
    proc, base = _serve(tmp_path, "--no-demo", "--db", str(tmp_path / "empty.sqlite"),
                        token="chosen-token")
    try:
        assert _json(base + "/products?market=DE") == []
        plugins = _json(base + "/admin/plugins",
                        headers={"Authorization": "Bearer chosen-token"})
        assert {p["name"] for p in plugins} >= {"vat", "testpay"}
    finally:
        out = _stop(proc)
    assert "chosen-token" not in out  # a token from the environment is never printed
