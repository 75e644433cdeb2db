"""The example third-party plugin package, examples/plugins/niaga-kurir-id, works as a
merchant would use it: installed with pip, enabled by its table in a markets file, served by
a real ``niaga serve`` with no change to the kernel.

The package is used as installed in this environment (``make test`` installs it into the
venv); where it is not installed, it is built and installed into a temporary target
directory with pip and put on the server's PYTHONPATH. The markets file is the demo one
with the README's ``[markets.ID.plugins.kurir-id]`` table added: the README's snippet is
what is served. An ID cart of demo products to Bandung is priced by the tariff, checked out
with testpay and shipped with a kurir-id tracking number.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from kernel.markets import demo_markets_path
from tests.serving import NIAGA, call_json, niaga_serve

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "plugins" / "niaga-kurir-id"
ADMIN = "adm_plugin_package"
VERSION = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]["version"]


def readme_markets_table() -> str:
    """The README's markets snippet (the ```toml block after ``<!-- markets -->``)."""
    text = (PACKAGE / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- markets -->\s*```toml\n(.*?)^```", text, flags=re.M | re.S)
    assert match, "README.md has no ```toml block marked <!-- markets -->"
    return match.group(1)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment a ``niaga`` subprocess finds the installed package in."""
    env = {**os.environ, "NIAGA_ADMIN_TOKEN": ADMIN}
    try:
        dist = distribution("niaga-kurir-id")
    except PackageNotFoundError:
        target = tmp_path_factory.mktemp("site")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(target), str(PACKAGE)], check=True, timeout=300)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target),
                                                          env.get("PYTHONPATH")]))
    else:
        assert [ep.value for ep in dist.entry_points if ep.group == "niaga"] == [
            "niaga_kurir_id:KurirId"]
    return env


@pytest.fixture(scope="module")
def markets_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("markets") / "markets.toml"
    path.write_text(demo_markets_path().read_text(encoding="utf-8") + "\n"
                    + readme_markets_table(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def served(env: dict[str, str], markets_file: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("serve")
    with niaga_serve(["--markets", str(markets_file), "--db", str(workdir / "niaga.sqlite")],
                     cwd=workdir, env=env) as (base, _):
        yield base


def test_niaga_plugins_lists_it_with_its_own_distributions_version(env) -> None:
    out = subprocess.run([str(NIAGA), "plugins"], env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    rows = {line.split()[0]: line.split(None, 3) for line in out.splitlines()[2:]}
    _, version, family, hooks = rows["kurir-id"]
    assert (version, family) == (VERSION, "carrier")
    assert hooks.strip().split(", ") == [
        "before_place_order", "create_shipment", "delivery_options", "track_shipment"]
    # the first-party plugins carry Niaga's own version: kurir-id comes from its own package
    assert rows["flat-rate"][1] == distribution("niaga").version != VERSION


def test_niaga_markets_check_passes_with_the_readme_table(env, markets_file) -> None:
    done = subprocess.run([str(NIAGA), "markets", "check", str(markets_file)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    id_row = next(line for line in done.stdout.splitlines() if line.startswith("ID "))
    assert "kurir-id" in id_row
    assert f"{markets_file}: OK (4 markets)" in done.stdout


def test_a_bad_value_in_its_table_stops_the_check_naming_the_key(env, tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(demo_markets_path().read_text(encoding="utf-8") + "\n"
                   + readme_markets_table().replace('jawa = "12000"', 'jawa = "12.000,00"'))
    done = subprocess.run([str(NIAGA), "markets", "check", str(bad)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert ("markets.ID.plugins.kurir-id: services.REG.per_kg.jawa: '12.000,00' is not a "
            "decimal amount") in done.stderr


def test_an_id_order_priced_by_the_tariff_paid_and_shipped(served: str) -> None:
    status, markets = call_json(served, "GET", "/markets")
    assert status == 200
    assert "kurir-id" in next(m for m in markets if m["code"] == "ID")["plugins"]

    status, cart = call_json(served, "POST", "/carts", {"market": "ID", "channel": "web"})
    assert status == 201, cart
    cart_id = cart["id"]
    for sku, quantity in [("BATIK-SHIRT-M", 2), ("COBEK-STONE", 1)]:  # 2 x 250 g + 2400 g
        status, cart = call_json(served, "POST", f"/carts/{cart_id}/lines",
                                 {"sku": sku, "quantity": quantity})
        assert status == 200, cart
    status, options = call_json(served, "GET", f"/carts/{cart_id}/delivery-options")
    assert status == 200
    assert not [o for o in options if o["carrier"] == "kurir-id"]  # no address, no price

    status, cart = call_json(served, "PUT", f"/carts/{cart_id}/address", {
        "country": "ID", "region": "Jawa Barat", "city": "Bandung", "postal_code": "40162",
        "line1": "Jl. Braga 10", "name": "Sari", "email": "sari@example.com"})
    assert status == 200, cart
    status, options = call_json(served, "GET", f"/carts/{cart_id}/delivery-options")
    assert status == 200, options
    kurir = {o["id"]: (o["label"], o["price"]["amount"], o["price"]["currency"])
             for o in options if o["carrier"] == "kurir-id"}
    # 2.9 kg charged as 3 kg to the "jawa" zone: REG Rp12.000/kg, YES Rp25.000/kg
    assert kurir == {"kurir-id:reg": ("Kurir ID Reguler (2-3 hari)", "36000.00", "IDR"),
                     "kurir-id:yes": ("Kurir ID YES - besok sampai", "75000.00", "IDR")}
    assert "flat-rate" in {o["carrier"] for o in options}  # the market's other carriers stay

    status, cart = call_json(served, "PUT", f"/carts/{cart_id}/delivery",
                             {"option_id": "kurir-id:reg"})
    assert status == 200, cart
    assert cart["shipping_total"] == {"amount": "36000.00", "currency": "IDR"}
    status, order = call_json(served, "POST", f"/carts/{cart_id}/checkout",
                              {"payment": {"method": "testpay", "token": "tok_ok"}},
                              headers={"Idempotency-Key": "kurir-id-package-1"})
    assert status == 201, order

    status, order = call_json(served, "GET", f"/orders/{order['id']}")
    assert status == 200
    assert order["status"] == "paid"
    assert (order["delivery"]["carrier"], order["delivery"]["option_id"]) == (
        "kurir-id", "kurir-id:reg")
    assert order["shipping_total"] == {"amount": "36000.00", "currency": "IDR"}
    assert {a["source"] for a in order["adjustments"] if a["kind"] == "shipping"} == {
        "kurir-id"}

    # fulfilled without a tracking number: kurir-id books the parcel (offline)
    status, order = call_json(served, "POST", f"/admin/orders/{order['id']}/fulfillments",
                              {}, headers={"Authorization": f"Bearer {ADMIN}"})
    assert status == 200, order
    (fulfillment,) = order["fulfillments"]
    assert re.fullmatch(r"KIDREG\d{11}", fulfillment["tracking_number"]), fulfillment
    status, tracking = call_json(served, "GET", f"/orders/{order['id']}/tracking")
    assert status == 200, tracking
    assert [(t["carrier"], t["tracking_number"], t["status"]) for t in tracking] == [
        ("kurir-id", fulfillment["tracking_number"], "label_created")]
