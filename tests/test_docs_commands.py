"""Every command in docs/ is run by a test or by CI: the convention, enforced.

Each ```sh block in docs/*.md has, on the line right before its fence, one of:

- ``<!-- run: tests/<path>.py::<test_name> -->``: that test runs the block. The file must
  exist, define the test, and mention the page's file name (it reads the block from the
  page: tests/docs_blocks.py ``blocks_run_by``);
- ``<!-- run: ci -->``: .ci/run or the Makefile's ``test`` target runs these very commands
  (``make test``);
- ``<!-- not run: <reason> -->``: only for commands that need a real AWS account or a
  package index (PyPI) account, and the reason says so.

Other fences are not commands (```toml, ```json, ```python, ```text and ```console output,
and unlabelled blocks), but a shell prompt (``$ cmd``) in one, or a ```bash / ```shell
fence, is a command hiding from this check. docs/BENCHMARKS.md keeps the command that
produced each section in an unlabelled block, as a record: each names a script of
tests/bench (or tests/load) that the Makefile runs with those arguments (``make bench``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.docs_blocks import DOCS, ROOT, Block, blocks, rel

RUN_TEST = re.compile(r"^(tests/[\w/.-]+\.py)::(\w+(?:::\w+)?)$")
SHELL_LANGS = {"bash", "shell", "zsh", "shell-session", "shellsession"}
HOW = ("put `<!-- run: tests/<file>.py::<test> -->` (the test that runs it), `<!-- run: ci -->`"
       " (.ci/run or `make test` runs it) or `<!-- not run: <reason naming the AWS or PyPI "
       "account it needs> -->` on the line right before the fence")


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _first(block: Block) -> str:
    line = next((x.strip() for x in block.body.splitlines() if x.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _commands(block: Block) -> list[str]:
    """The block's command lines: comments and blank lines dropped, continuations joined."""
    commands, current = [], ""
    for raw in block.body.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        current += line
        if current.endswith("\\"):
            current = current[:-1].rstrip() + " "
            continue
        commands.append(" ".join(re.sub(r"\s+#.*$", "", current).split()))
        current = ""
    return commands


def _recipe(makefile: str, target: str) -> tuple[list[str], str]:
    """A Makefile rule's prerequisites and recipe (its tab-indented lines)."""
    rule = re.search(rf"^{re.escape(target)}:([^\n=]*)\n((?:\t.*\n|#.*\n)*)", makefile,
                     flags=re.M)
    return (rule.group(1).split(), rule.group(2)) if rule else ([], "")


def _ci_text() -> str:
    """What CI runs: .ci/run, and the recipes of the Makefile's test target and of what it
    depends on (the install)."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    todo, seen = ["test"], set()
    while todo:
        target = todo.pop()
        if target in seen:
            continue
        seen.add(target)
        prerequisites, recipe = _recipe(makefile, target)
        text += "\n" + recipe
        todo += prerequisites
    return text


def _defines(test_file: Path, name: str) -> bool:
    tree = ast.parse(test_file.read_text(encoding="utf-8"))
    *owner, func = name.split("::")
    scope = tree.body
    if owner:
        classes = [n for n in scope if isinstance(n, ast.ClassDef) and n.name == owner[0]]
        if not classes:
            return False
        scope = classes[0].body
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == func
               for n in scope)


def problems(page: Path) -> list[str]:
    """Every way the page breaks the convention, each naming the block and what it lacks."""
    found = []
    name = page.name
    page_blocks = blocks(page)
    fences = {b.line for b in page_blocks}
    lines = page.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if re.match(r"^<!--\s*(not )?run:", line.strip()) and number + 1 not in fences:
            found.append(f"{rel(page)}:{number}: the marker {line.strip()!r} is "
                         "not on the line right before a ```sh fence")
    ci = _ci_text()
    for block in page_blocks:
        where = f"{block.where}: the ```{block.lang} block starting {_first(block)!r}"
        if block.lang in SHELL_LANGS:
            found.append(f"{where}: label shell commands ```sh (and mark them), not "
                         f"```{block.lang}")
            continue
        if block.lang != "sh":
            if block.run is not None or block.not_run is not None:
                found.append(f"{where} has a run marker, but only ```sh blocks are run: "
                             "label the block ```sh or drop the marker")
            prompts = [x for x in block.body.splitlines() if x.startswith("$ ")]
            if prompts:
                found.append(f"{where} holds a shell command ({prompts[0]!r}): put the "
                             "command, without `$ `, in a ```sh block with a marker, and "
                             "what it prints in a ```text block after it")
            if page.name == "BENCHMARKS.md" and block.lang == "":
                found.extend(_record_problems(block, where))
            continue
        if block.run is None and block.not_run is None:
            found.append(f"{where} has no marker: {HOW}")
        elif block.not_run is not None:
            reason = block.not_run
            if not (re.search(r"\baccount\b", reason, re.I)
                    and re.search(r"\bAWS\b|PyPI|package index", reason)):
                found.append(f"{where} is marked not run ({reason!r}): that is only for "
                             "commands that need a real AWS or PyPI/package-index account, "
                             "and the reason must say which account; run the block from a "
                             "test instead")
        elif block.run == "ci":
            for command in _commands(block):
                if command not in " ".join(ci.split()):
                    found.append(f"{where} is marked `ci`, but .ci/run and the Makefile's "
                                 f"test target do not run {command!r}: name the test that "
                                 "runs it instead")
        else:
            match = RUN_TEST.match(block.run)
            if not match:
                found.append(f"{where}: the marker names {block.run!r}; write `ci` or "
                             "`tests/<path>.py::<test_name>`")
                continue
            path, test = match.groups()
            test_file = ROOT / path
            if not test_file.is_file():
                found.append(f"{where}: its marker names {path}, which does not exist")
                continue
            if not _defines(test_file, test):
                found.append(f"{where}: its marker names {test}, which {path} does not define")
            if name not in test_file.read_text(encoding="utf-8"):
                found.append(f"{where}: its marker names {path}, which never mentions "
                             f"{name!r}: the test must read the block from the page")
    return found


def _record_problems(block: Block, where: str) -> list[str]:
    """An unlabelled BENCHMARKS.md block that starts with the venv's Python records the command
    behind a section: the script must exist and the Makefile must run it just so."""
    found: list[str] = []
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8").replace("$(BIN)/", ".venv/bin/")
    run_by_make = {" ".join(x.split()) for x in makefile.splitlines() if x.startswith("\t")}
    for command in _commands(block):
        if not command.startswith(".venv/bin/python "):
            return found  # a block of printed output, not a record of a command
        script = command.split()[1]
        if not (ROOT / script).is_file():
            found.append(f"{where} records {command!r}, but {script} does not exist")
        elif command not in run_by_make:
            found.append(f"{where} records {command!r}, which no Makefile target runs "
                         "(make bench writes these figures): update the record or the "
                         "Makefile")
    return found


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_every_command_on_the_page_is_run_by_a_test_or_ci(page: Path) -> None:
    found = problems(page)
    assert not found, (f"{len(found)} problem(s) with shell commands in "
                       f"{rel(page)} (see tests/test_docs_commands.py):\n  - "
                       + "\n  - ".join(found))


def test_the_check_finds_each_kind_of_problem(tmp_path: Path) -> None:
    """A page that breaks each rule once: each break is reported, with the fence's line."""
    cases = [  # (the lines before the fence, the fence, its body, what the report says)
        ([], "```sh", "niaga plugins", "has no marker"),
        (["<!-- run: tests/nope.py::test_x -->"], "```sh", "niaga plugins",
         "tests/nope.py, which does not exist"),
        (["<!-- run: tests/test_docs_commands.py::test_nope -->"], "```sh", "niaga plugins",
         "test_nope, which tests/test_docs_commands.py does not define"),
        (["<!-- run: tests/test_readme.py::test_readme_walkthrough_runs_verbatim -->"],
         "```sh", "niaga plugins", "which never mentions 'selftest-page.md'"),
        (["<!-- run: ci -->"], "```sh", "make deploy", "do not run 'make deploy'"),
        (["<!-- run: tests/test_docs_commands.py -->"], "```sh", "niaga plugins",
         "write `ci` or `tests/<path>.py::<test_name>`"),
        (["<!-- not run: slow -->"], "```sh", "make bench", "marked not run ('slow')"),
        ([], "```bash", "make demo", "not ```bash"),
        ([], "```", "$ niaga plugins", "holds a shell command ('$ niaga plugins')"),
        (["<!-- run: ci -->"], "```toml", "a = 1", "only ```sh blocks are run"),
        (["<!-- run: ci -->", ""], "```sh", "make test", "not on the line right before"),
        # these two are fine
        (["<!-- not run: needs an AWS account -->"], "```sh", "sam deploy --guided", None),
        (["<!-- run: ci -->"], "```sh", "make test", None),
    ]
    lines, expected = ["# selftest", ""], []
    for before, fence, body, says in cases:
        lines += before
        if says:
            line = len(lines) - 1 if says.startswith("not on the line") else len(lines) + 1
            expected.append((f":{line}:", says))
        lines += [fence, body, "```", ""]
    page = tmp_path / "selftest-page.md"
    page.write_text("\n".join(lines), encoding="utf-8")
    found = problems(page)
    for where, says in expected:
        assert any(where in f and says in f for f in found), (where, says, found)
    # one report each, except the marker one blank line too early, which also leaves its
    # block without a marker
    assert len(found) == len(expected) + 1, found


def test_the_docs_index_lists_every_page() -> None:
    """docs/README.md (the index the top README links) has a line for every page."""
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    pages = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert not pages - linked, f"docs/README.md does not list {sorted(pages - linked)}"
    assert not linked - pages, f"docs/README.md links missing pages {sorted(linked - pages)}"
    assert "(docs/README.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
