"""docs/concepts.md says what the code does.

- Its hook table names every hook of kernel/hookspecs.py, and no other, each with the
  semantics its docstring declares (and pluggy's ``firstresult`` agrees); the semantics
  table names the four.
- Its table of markets-file keys is the schema of kernel/markets.py, key for key; any
  other key-like name the page puts in code (``a_key``, ``money.x``) is a key of that
  table or one of the few other things the page names on purpose; its TOML examples load
  with the installed plugins.
- Its shell commands run as written (the ``<!-- run: -->`` marker before each ```sh
  block names the test below).
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kernel import hookspecs
from kernel.markets import _MarketFile, _MoneyPolicyFile, parse_markets
from kernel.plugins import Registry, build_market_plugins, hook_names

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "concepts.md"
SEMANTICS = ("first result", "collect", "chain", "notify")
# names in code on the page that look like keys but are not markets-file keys
NOT_KEYS = {
    "api_key_env", "server_key_env",  # plugin settings (stripe, midtrans)
    "low_threshold",  # a field of PUT /admin/inventory/{sku}/{location}
    "on_hold", "pending_payment",  # order statuses
}


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _table(text: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"expected a name in backticks, got {cell!r}"
    return match.group(1)


def _declared_semantics(name: str) -> str:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    return doc.split(":", 1)[0]


def _schema_keys() -> set[str]:
    return ({f for f in _MarketFile.__struct_fields__ if f != "money"}
            | {f"money.{f}" for f in _MoneyPolicyFile.__struct_fields__})


def test_the_hook_table_names_every_hook_with_its_declared_semantics() -> None:
    rows = _table(_text(), "| hook | semantics |")
    assert all(len(row) == 3 and row[2] for row in rows), "every hook gets one line"
    documented = {_code(row[0]): row[1] for row in rows}
    assert len(documented) == len(rows), "a hook is listed twice"
    assert sorted(documented) == hook_names()
    for name, semantics in documented.items():
        assert semantics == _declared_semantics(name), name
        firstresult = getattr(hookspecs, name).niaga_spec["firstresult"]
        assert firstresult == (semantics == "first result"), name


def test_the_semantics_table_names_the_four() -> None:
    rows = _table(_text(), "| semantics |")
    assert tuple(row[0] for row in rows) == SEMANTICS
    assert {_declared_semantics(name) for name in hook_names()} <= set(SEMANTICS)


def test_every_hook_named_on_the_page_exists() -> None:
    named = set(re.findall(r"\bniaga_\w+", _text()))
    assert named <= set(hook_names()), sorted(named - set(hook_names()))


def test_the_key_table_is_the_markets_file_schema() -> None:
    rows = _table(_text(), "| key | default |")
    keys = [_code(row[0]) for row in rows]
    assert len(keys) == len(set(keys)), "a key is listed twice"
    assert set(keys) == _schema_keys()


def test_every_key_named_on_the_page_exists_in_the_schema() -> None:
    names = set(re.findall(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+|money\.[a-z_]+)`", _text()))
    names -= set(hook_names())
    unknown = names - _schema_keys() - NOT_KEYS
    assert not unknown, f"named like markets-file keys but not in the schema: {unknown}"
    stale = NOT_KEYS - names
    assert not stale, f"NOT_KEYS lists names the page no longer uses: {stale}"


def test_the_toml_examples_load_with_their_plugins() -> None:
    blocks = re.findall(r"^```toml\n(.*?)^```", _text(), flags=re.M | re.S)
    assert blocks
    for block in blocks:
        markets = parse_markets(tomllib.loads(block))
        build_market_plugins(markets, Registry())


def _sh_blocks(text: str) -> list[tuple[str, str]]:
    """(marker, commands) of every ```sh block; marker is the line right before it."""
    return [(m.group(1), m.group(2)) for m in
            re.finditer(r"^([^\n]*)\n```sh\n(.*?)^```", text, flags=re.M | re.S)]


def test_the_shell_commands_on_the_page_run() -> None:
    blocks = _sh_blocks(_text())
    assert blocks
    marker = ("<!-- run: tests/unit/test_docs_concepts.py::"
              "test_the_shell_commands_on_the_page_run -->")
    venv_bin = str(Path(sys.executable).parent)
    # nothing from the caller's environment: the page's commands set what they need
    env = {k: v for k, v in os.environ.items()
           if k not in ("STRIPE_API_KEY", "MIDTRANS_SERVER_KEY")}
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    for before, commands in blocks:
        assert before == marker, f"a ```sh block is not marked as run here: {before!r}"
        done = subprocess.run(["bash", "-e", "-c", commands], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        for path in re.findall(r"niaga markets check (\S+)", commands):
            markets = tomllib.loads((ROOT / path).read_text(encoding="utf-8"))["markets"]
            assert f"{path}: OK ({len(markets)} markets)" in done.stdout


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_the_page_explains_each_semantics(semantics: str) -> None:
    assert f"| {semantics} |" in _text()


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


def test_the_relative_links_on_the_page_resolve() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#([^)]*))?\)", _text())
    assert links
    for path, anchor in links:
        if "://" in path:
            continue
        target = DOC.parent / path
        assert target.exists(), path
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), flags=re.M)
            assert anchor in {_slug(h) for h in headings}, f"{path}#{anchor}"
