"""The first-party plugins as the kernel loads them: entry points, families, the demo markets."""

from __future__ import annotations

import tomllib
from importlib import import_module
from pathlib import Path

import pytest

from kernel.markets import demo_markets_path, load_markets
from kernel.plugins import Registry, build_market_plugins

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
    "niaga"
]
FAMILIES = {"vat": "tax", "us-sales-tax": "tax", "testpay": "payment",
            "bank-transfer": "payment", "flat-rate": "carrier", "store-pickup": "carrier",
            "cod": "payment", "weight-table": "carrier", "local-courier": "carrier",
            "stripe": "payment", "midtrans": "payment", "points": "loyalty",
            "risk-rules": "risk", "fx": "localisation"}


def load(target: str):
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


@pytest.mark.parametrize(("name", "target"), sorted(ENTRY_POINTS.items()))
def test_entry_points_name_their_class(name, target):
    cls = load(target)
    assert cls.name == name
    assert cls.family == FAMILIES[name]
    assert import_module(cls.__module__).__doc__  # merchants read it


def test_the_demo_markets_load_with_every_first_party_plugin():
    registry = Registry({name: load(t) for name, t in ENTRY_POINTS.items()}, discover=False)
    managers = build_market_plugins(load_markets(demo_markets_path()), registry)
    for code, manager in managers.items():
        assert manager.names == list(manager.market.plugins), code
    us = managers["US"]
    assert us.implementers("niaga_calculate_taxes") == ["us-sales-tax"]
    assert set(managers["DE"].implementers("niaga_delivery_options")) == {
        "flat-rate", "store-pickup"}


def test_only_the_plugins_a_market_enables_are_imported():
    """A Lambda container pays the import of what its markets run, not of every plugin."""
    import json
    import subprocess
    import sys

    script = """
import json, sys, tomllib
from kernel.markets import demo_markets_path, parse_markets
from kernel.plugins import Registry, build_market_plugins
registry = Registry()
raw = tomllib.loads(demo_markets_path().read_text(encoding="utf-8"))
de = raw["markets"]["DE"]
de["plugins"] = {k: v for k, v in de["plugins"].items() if k in ("vat", "testpay")}
markets = parse_markets({"markets": {"DE": de}})
build_market_plugins(markets, registry)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("plugins."))))
print(len(registry.names()))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.splitlines()
    plugin_modules = {t.partition(":")[0] for t in ENTRY_POINTS.values()}
    imported = set(json.loads(out[0])) & plugin_modules
    assert imported == {"plugins.tax.vat", "plugins.payments.testpay"}, imported
    assert int(out[1]) >= len(ENTRY_POINTS), "every installed plugin is still listed"
