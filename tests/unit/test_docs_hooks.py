"""docs/plugins.md documents every hook as kernel/hookspecs.py defines it, and its examples run.

Every hook has a ``### niaga_<name>`` section whose ``**Semantics:**`` line matches
the hookspec docstring and whose signature block matches the hookspec's parameters;
the page names no hook that does not exist; and the example plugin, markets files
and test module in the intro and the testing section work as the page says.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import tomllib
import types
from pathlib import Path

import pytest

from kernel import hookspecs
from kernel.errors import ConfigError
from kernel.markets import parse_markets
from kernel.plugins import Registry, build_market_plugins, hook_names
from kernel.testing import check_plugin_conformance, make_market, make_plugins

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
# kernel.testing's fixtures, named on the page
NOT_HOOKS = {"niaga_market", "niaga_plugins", "niaga_kernel", "niaga_cart", "niaga_order"}
FIXTURES = {"niaga_market": make_market, "niaga_plugins": make_plugins}


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _headings(text: str) -> list[tuple[int, int, str]]:
    """(start, end, heading) of every level 1-3 heading outside fenced code blocks."""
    found = []
    fenced = False
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,3} ", line):
            found.append((offset, offset + len(line), line.strip()))
        offset += len(line)
    return found


def _hook_sections(text: str) -> dict[str, str]:
    """``niaga_x`` -> the text of its ``### niaga_x`` section (up to the next heading)."""
    heads = _headings(text)
    sections: dict[str, str] = {}
    for i, (_, end, heading) in enumerate(heads):
        match = re.fullmatch(r"### (niaga_\w+)", heading)
        if match is None:
            continue
        name = match.group(1)
        assert name not in sections, f"two sections for {name}"
        stop = heads[i + 1][0] if i + 1 < len(heads) else len(text)
        sections[name] = text[end:stop]
    return sections


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def _example(text: str, tag: str, lang: str) -> str:
    match = re.search(rf"<!-- example:{tag} -->\s*```{lang}\n(.*?)^```", text,
                      flags=re.M | re.S)
    assert match, f"no ```{lang} block marked <!-- example:{tag} -->"
    return match.group(1)


def _semantics(name: str) -> str:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    return doc.split(":", 1)[0]


@pytest.fixture(scope="module")
def sections() -> dict[str, str]:
    return _hook_sections(_text())


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_has_a_section_with_its_semantics_and_signature(name, sections):
    assert name in sections, f"docs/plugins.md has no '### {name}' heading"
    section = sections[name]
    lines = re.findall(r"^\*\*Semantics:\*\* (.+?)\s*$", section, flags=re.M)
    assert lines == [_semantics(name)], f"{name}: **Semantics:** says {lines}"
    blocks = [b for b in _python_blocks(section) if f"def {name}(" in b]
    assert blocks, f"{name}: no ```python block with 'def {name}('"
    # the first block is the signature, copied from the hookspec
    signature = ast.parse(blocks[0]).body[0]
    assert isinstance(signature, ast.FunctionDef) and signature.name == name
    documented = [a.arg for a in signature.args.args]
    assert documented == list(inspect.signature(getattr(hookspecs, name)).parameters), name


def test_the_page_names_no_hook_that_does_not_exist(sections):
    text = _text()
    known = set(hook_names())
    assert set(sections) <= known, f"sections for unknown hooks: {set(sections) - known}"
    mentioned = set(re.findall(r"\bniaga_\w+", text)) - NOT_HOOKS
    assert mentioned <= known, f"the page mentions unknown hooks: {sorted(mentioned - known)}"
    for block in _python_blocks(text):
        for defined in re.findall(r"def (niaga_\w+)\(", block):
            assert defined in known, f"an example implements unknown hook {defined}"


@pytest.fixture
def example_plugin(monkeypatch) -> tuple[str, type]:
    """The intro's plugin, importable under the module name its pyproject's entry point gives."""
    text = _text()
    pyproject = tomllib.loads(_example(text, "pyproject", "toml"))
    ((ep_name, target),) = pyproject["project"]["entry-points"]["niaga"].items()
    module_name, _, class_name = target.partition(":")
    assert module_name in pyproject["tool"]["setuptools"]["py-modules"]
    module = types.ModuleType(module_name)
    module.__file__ = f"{DOC}:<example:plugin>"
    monkeypatch.setitem(sys.modules, module_name, module)
    code = compile(_example(text, "plugin", "python"), module.__file__, "exec")
    exec(code, module.__dict__)
    return ep_name, getattr(module, class_name)


def test_the_example_plugin_passes_the_conformance_suite(example_plugin):
    ep_name, plugin = example_plugin
    assert check_plugin_conformance(plugin) == []
    assert plugin.name == ep_name


def test_the_example_markets_file_loads_with_the_example_plugin(example_plugin):
    ep_name, plugin = example_plugin
    markets = parse_markets(tomllib.loads(_example(_text(), "markets", "toml")))
    managers = build_market_plugins(markets, Registry({ep_name: plugin}))
    for code, manager in managers.items():
        assert ep_name in manager.names
        assert manager.implementers("niaga_calculate_taxes") == [ep_name], code


def test_the_example_config_errors_are_the_ones_shown(example_plugin):
    ep_name, plugin = example_plugin
    text = _text()
    markets = parse_markets(tomllib.loads(_example(text, "markets-bad", "toml")))
    with pytest.raises(ConfigError) as error:
        build_market_plugins(markets, Registry({ep_name: plugin}))
    assert error.value.problems
    shown = text.split("<!-- example:markets-bad -->", 1)[1]
    for problem in error.value.problems:
        assert f"  - {problem}\n" in shown, f"the page does not show: {problem}"
    assert f"{len(error.value.problems)} problem(s)" in shown


def test_the_example_test_module_passes(example_plugin):
    namespace: dict = {"__name__": "test_example_from_docs"}
    exec(compile(_example(_text(), "test", "python"), f"{DOC}:<example:test>", "exec"),
         namespace)
    tests = {name: fn for name, fn in namespace.items()
             if name.startswith("test_") and callable(fn)}
    assert tests
    for fn in tests.values():
        params = inspect.signature(fn).parameters
        fn(**{p: FIXTURES[p] for p in params})


def test_every_python_block_on_the_page_is_valid_python():
    for block in _python_blocks(_text()):
        ast.parse(block)


def test_a_hook_implementation_not_named_niaga_is_a_conformance_problem():
    from kernel import hookimpl

    class Misnamed:
        name, family = "misnamed", "tax"

        @hookimpl
        def calculate_taxes(self, request):  # the kernel only looks at niaga_* names
            return None

        @hookimpl
        def niaga_calculate_taxes(self, request):
            return None

    assert check_plugin_conformance(Misnamed) == [
        "calculate_taxes: a hook implementation must be named niaga_<hook>"]
