"""The example markets files under examples/markets/ work as their comments say.

Every file passes ``niaga markets check`` (the real command) and serves: ``niaga serve
--markets FILE`` starts and ``GET /markets`` lists exactly the markets, channels and
plugins the file declares. The commented demo holds the same data as the demo the kernel
ships. The Indonesian retailer takes a cart from chat selling (``social``) and refuses a
channel it does not enable, naming the field; its payment and delivery setup offers what
its comments promise with the demo catalog.

The gateways read their keys from the environment: the tests set placeholders, which
never reach a network (nothing here pays).
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel.markets import CHANNELS, demo_markets_path, load_markets
from tests.serving import NIAGA, call_json, spawn_niaga, stop, wait_up

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "markets"
FILES = sorted(EXAMPLES.glob("*.toml"))
SECRETS = {"STRIPE_API_KEY": "sk_test_placeholder",
           "MIDTRANS_SERVER_KEY": "SB-Mid-server-placeholder"}
ADMIN = "adm_example_files"


def _env(**changes: str | None) -> dict[str, str]:
    env = {**os.environ, **SECRETS, "NIAGA_ADMIN_TOKEN": ADMIN}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _declared(path: Path) -> dict[str, dict[str, Any]]:
    return tomllib.loads(path.read_text(encoding="utf-8"))["markets"]


def test_the_expected_example_files_exist() -> None:
    assert {p.name for p in FILES} >= {"demo.toml", "single-shop.toml",
                                       "indonesian-retailer.toml"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_niaga_markets_check_passes(path: Path) -> None:
    done = subprocess.run([str(NIAGA), "markets", "check", str(path)], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{path}: OK ({len(_declared(path))} markets)" in done.stdout


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_secret_is_written_in_a_file(path: Path) -> None:
    # the gateways' keys come from the environment (the *_env settings), never the file
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(api_key|server_key|webhook_secret)\s*=", text, flags=re.M)


def test_a_gateway_key_missing_from_the_environment_stops_the_check() -> None:
    path = EXAMPLES / "single-shop.toml"
    done = subprocess.run([str(NIAGA), "markets", "check", str(path)], cwd=ROOT,
                          env=_env(STRIPE_API_KEY=None), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert "markets.DE.plugins.stripe: api_key: not set" in done.stderr
    assert "STRIPE_API_KEY" in done.stderr


def test_the_commented_demo_holds_the_shipped_demo_data() -> None:
    shipped = tomllib.loads(demo_markets_path().read_text(encoding="utf-8"))
    commented = tomllib.loads((EXAMPLES / "demo.toml").read_text(encoding="utf-8"))
    assert commented == shipped
    assert load_markets(EXAMPLES / "demo.toml") == load_markets(demo_markets_path())


# -- served -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One ``niaga serve --markets FILE`` per example file (with the demo catalog), started
    side by side: file name -> base URL."""
    servers: dict[str, tuple[str, subprocess.Popen[str]]] = {}
    try:
        for path in FILES:
            db = tmp_path_factory.mktemp(path.stem) / "niaga.sqlite"
            servers[path.name] = spawn_niaga(["--markets", str(path), "--db", str(db)],
                                             cwd=ROOT, env=_env())
        for name, (base, process) in servers.items():
            wait_up(base, process, what=f"niaga serve --markets {name}")
        yield {name: base for name, (base, _) in servers.items()}
    finally:
        for _, process in servers.values():
            stop(process)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_serve_lists_exactly_the_declared_markets_and_channels(path: Path, served) -> None:
    status, markets = call_json(served[path.name], "GET", "/markets")
    assert status == 200
    declared = _declared(path)
    assert [m["code"] for m in markets] == list(declared)
    for market in markets:
        body = declared[market["code"]]
        assert market["channels"] == body.get("channels", list(CHANNELS)), market["code"]
        assert (market["name"], market["currency"]) == (body["name"], body["currency"])
        assert sorted(market["plugins"]) == sorted(body.get("plugins", {})), market["code"]


def _problem_fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


def test_indonesian_retailer_takes_a_chat_cart_and_refuses_an_unknown_channel(served) -> None:
    base = served["indonesian-retailer.toml"]
    social = {"Niaga-Channel": "social"}
    status, cart = call_json(base, "POST", "/carts", {"market": "ID", "channel": "social"})
    assert status == 201, cart
    assert (cart["channel"], cart["channels"]) == ("social", ["social"])
    status, cart = call_json(base, "POST", f"/carts/{cart['id']}/lines",
                             {"sku": "BATIK-SHIRT-M", "quantity": 1}, headers=social)
    assert status == 200, cart

    # chat apps all count as "social": a channel the market does not enable is refused
    status, problem = call_json(base, "POST", "/carts", {"market": "ID", "channel": "tiktok"})
    assert status == 422, problem
    assert _problem_fields(problem) == ["channel"]
    assert "'tiktok' is not a channel of market ID" in problem["errors"][0]["message"]
    status, problem = call_json(base, "POST", f"/carts/{cart['id']}/lines",
                                {"sku": "BATIK-SHIRT-M", "quantity": 1},
                                headers={"Niaga-Channel": "tiktok"})
    assert status == 422, problem
    assert _problem_fields(problem) == ["Niaga-Channel"]


def test_indonesian_retailer_offers_its_payments_and_deliveries(served) -> None:
    base = served["indonesian-retailer.toml"]
    status, cart = call_json(base, "POST", "/carts", {"market": "ID", "channel": "web"})
    assert status == 201, cart
    call_json(base, "POST", f"/carts/{cart['id']}/lines", {"sku": "BATIK-SHIRT-M", "quantity": 1})
    status, cart = call_json(base, "PUT", f"/carts/{cart['id']}/address", {
        "country": "ID", "region": "DKI Jakarta", "city": "Jakarta", "postal_code": "10310",
        "line1": "Jl. M.H. Thamrin 1", "name": "Sari", "email": "sari@example.com"})
    assert status == 200, cart
    status, methods = call_json(base, "GET", f"/carts/{cart['id']}/payment-methods")
    assert status == 200, methods
    assert {m["id"] for m in methods} >= {"bank-transfer", "midtrans", "stripe", "cod"}
    status, options = call_json(base, "GET", f"/carts/{cart['id']}/delivery-options")
    assert status == 200, options
    carriers = {o["carrier"] for o in options}
    assert carriers == {"weight-table", "local-courier", "store-pickup"}
    reguler = next(o for o in options if o["carrier"] == "weight-table")
    assert reguler["id"] == "weight-table:reguler"
    assert reguler["price"] == {"amount": "12000.00", "currency": "IDR"}  # 250 g to Java


def test_single_shop_sells_on_the_web_and_at_the_till_only(served) -> None:
    base = served["single-shop.toml"]
    for channel in ("web", "pos"):
        status, cart = call_json(base, "POST", "/carts", {"market": "DE", "channel": channel})
        assert status == 201, cart
    status, problem = call_json(base, "POST", "/carts", {"market": "DE", "channel": "social"})
    assert status == 422, problem
    assert _problem_fields(problem) == ["channel"]
    assert "(web, pos)" in problem["errors"][0]["message"]
