"""Hypothesis fuzzing of the markets file: any document either loads or raises ConfigError
naming where the problem is; never another exception (a merchant's typo must not crash)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel.errors import ConfigError
from kernel.markets import demo_markets_path, load_markets, parse_markets

DEMO = tomllib.loads(demo_markets_path().read_text(encoding="utf-8"))
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

# what TOML can hold (no None): scalars, arrays and tables
toml_values = st.recursive(
    st.none().map(lambda _: "") | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=12)


def _loads_or_names(data: object) -> None:
    try:
        parse_markets(data)  # type: ignore[arg-type]
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)


@FUZZ
@given(st.dictionaries(st.text(max_size=8), toml_values, max_size=4))
def test_any_document_loads_or_raises_config_error(data):
    _loads_or_names(data)


@FUZZ
@given(st.sampled_from(sorted(DEMO["markets"])), st.data())
def test_a_mutated_demo_market_names_the_market_and_key(code, data):
    doc = {"markets": {k: dict(v) for k, v in DEMO["markets"].items()}}
    market = doc["markets"][code]
    key = data.draw(st.sampled_from([*sorted(market), "colour"]))
    market[key] = data.draw(toml_values)
    try:
        parse_markets(doc)
    except ConfigError as exc:
        assert any(p.startswith(f"markets.{code}") for p in exc.problems), exc.problems


@FUZZ
@given(st.binary(max_size=200))
def test_any_file_loads_or_raises_config_error(tmp_path_factory, raw):
    path = Path(tmp_path_factory.mktemp("m")) / "markets.toml"
    path.write_bytes(demo_markets_path().read_bytes()[:100] + raw)
    try:
        load_markets(path)
    except ConfigError as exc:
        assert exc.problems
