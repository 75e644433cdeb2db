"""The shell commands of docs/plugins.md, run on the page's example plugin.

The page's Freedonia GST plugin is "installed" as pip would leave it, without pip: its
module (the page's ``example:plugin`` block) and a ``.dist-info`` made from the page's
``example:pyproject`` block (name, version, the ``niaga`` entry point), in a folder on
PYTHONPATH. Then ``niaga plugins`` and ``niaga markets check`` print what the page shows.
(tests/unit/test_docs_hooks.py checks the plugin's hooks and config errors in process.)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.docs_blocks import DOCS, Block, blocks, blocks_run_by, run_sh

DOC = DOCS / "plugins.md"
HERE = __file__


def _example(tag: str, lang: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- example:{tag} -->\s*```{lang}\n(.*?)^```", text, flags=re.S | re.M)
    assert match, f"docs/plugins.md has no ```{lang} block marked <!-- example:{tag} -->"
    return match.group(1)


def _shown(block: Block) -> str:
    """The ```text block right after a command: what the page says it prints."""
    after = [b for b in blocks(DOC) if b.line > block.line]
    assert after and after[0].lang == "text", \
        f"{block.where}: a ```text block with what the command prints should follow it"
    return after[0].body


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    project = tomllib.loads(_example("pyproject", "toml"))["project"]
    site = tmp_path / "site"
    site.mkdir()
    (site / "freedonia_gst.py").write_text(_example("plugin", "python"), encoding="utf-8")
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf-8")
    (dist / "entry_points.txt").write_text(
        "[niaga]\n" + "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["niaga"].items()),
        encoding="utf-8")
    return site


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_niaga_plugins_lists_the_example(installed: Path, tmp_path: Path) -> None:
    (block,) = blocks_run_by(DOC, HERE, "test_niaga_plugins_lists_the_example")
    done = run_sh(block.body, cwd=tmp_path, PYTHONPATH=str(installed))
    assert done.returncode == 0, done.stderr
    printed = {_cells(line)[0]: _cells(line) for line in done.stdout.splitlines()[2:]}
    shown = _shown(block).strip().splitlines()
    assert _cells(shown[0]) == _cells(done.stdout.splitlines()[0])  # the header
    for line in shown[2:]:
        if line.strip() == "...":
            continue
        name, version, family, hooks = _cells(line)
        assert name in printed, f"`niaga plugins` does not list {name}:\n{done.stdout}"
        assert printed[name][1:3] == [version, family], printed[name]
        # the page may cut a long hook list short with "..."
        listed = [h for h in hooks.split(", ") if h != "..."]
        assert printed[name][3].split(", ")[:len(listed)] == listed, printed[name]
    assert "freedonia-gst" in printed


def test_niaga_markets_check_shows_every_problem(installed: Path, tmp_path: Path) -> None:
    (block,) = blocks_run_by(DOC, HERE, "test_niaga_markets_check_shows_every_problem")
    (tmp_path / "freedonia.toml").write_text(_example("markets-bad", "toml"), encoding="utf-8")
    done = run_sh(block.body, cwd=tmp_path, PYTHONPATH=str(installed))
    assert done.returncode == 1, "the check exits 1 on a file with problems"
    assert done.stderr.strip().splitlines() == _shown(block).strip().splitlines(), done.stderr
