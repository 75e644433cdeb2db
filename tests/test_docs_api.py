"""docs/api.md and docs/openapi.json.

- The committed OpenAPI document is what the code generates now (``niaga openapi``), and
  what a running server answers at /schema/openapi.json.
- The page's ```sh blocks run against ``NIAGA_ADMIN_TOKEN=dev-admin niaga serve`` and print
  what the ```text / ```json block after each shows.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kernel.api.openapi import openapi_document
from tests.docs_blocks import DOCS, Block, blocks, blocks_run_by, env, run_sh, start_server

DOC = DOCS / "api.md"
COMMITTED = DOCS / "openapi.json"
HERE = __file__
REGENERATE = "niaga openapi --out docs/openapi.json"

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="the page uses curl")


def _committed() -> dict:
    return json.loads(COMMITTED.read_text(encoding="utf-8"))


def _shown_output(block: Block) -> tuple[str, str] | None:
    """The ```text or ```json block that follows ``block`` (before the next ```sh block)."""
    for b in blocks(block.doc):
        if b.line <= block.line:
            continue
        if b.lang == "sh":
            return None
        if b.lang in ("text", "json"):
            return b.lang, b.body
    return None


def _assert_prints_what_is_shown(block: Block, printed: str) -> None:
    shown = _shown_output(block)
    if shown is None:
        return
    lang, body = shown
    if lang == "json":
        assert json.loads(printed) == json.loads(body), \
            f"{block.where} prints\n{printed}\nbut the page shows\n{body}"
    else:
        assert printed.strip().splitlines() == body.strip().splitlines(), \
            f"{block.where} prints\n{printed}\nbut the page shows\n{body}"


def _server_block(command: str) -> Block:
    return Block(DOC, 0, "sh", command + "\n", "")


def test_the_committed_document_is_what_the_code_generates() -> None:
    assert COMMITTED.exists(), f"docs/openapi.json is missing: run `{REGENERATE}`"
    assert _committed() == openapi_document(), (
        f"docs/openapi.json is out of date with the routes and schemas: run `{REGENERATE}` "
        "and commit the result")


def test_niaga_openapi_writes_the_committed_document(tmp_path: Path) -> None:
    (block,) = blocks_run_by(DOC, HERE, "test_niaga_openapi_writes_the_committed_document")
    assert block.body.strip() == REGENERATE
    # run in an empty folder with a docs/: the checkout's file is compared, not replaced
    (tmp_path / "docs").mkdir()
    done = run_sh(block.body, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "docs" / "openapi.json").read_bytes()
    assert written == COMMITTED.read_bytes(), \
        f"`{REGENERATE}` writes another document than the committed one: run it and commit"
    # without --out: the same bytes on stdout
    printed = subprocess.run(["niaga", "openapi"], cwd=tmp_path, env=env(),
                             capture_output=True, check=True).stdout
    assert printed == written


@needs_curl
def test_the_live_document(tmp_path: Path) -> None:
    (block,) = blocks_run_by(DOC, HERE, "test_the_live_document")
    server = start_server(_server_block("niaga serve"), cwd=tmp_path)
    try:
        done = run_sh(block.body, cwd=tmp_path, port=server.port)
        assert done.returncode == 0, done.stderr
        _assert_prints_what_is_shown(block, done.stdout)
        assert json.loads((tmp_path / "openapi.json").read_text()) == _committed(), \
            "the server's /schema/openapi.json differs from docs/openapi.json"
        # the browsing pages the page names
        for path in ("/schema", "/schema/swagger", "/schema/elements", "/schema/rapidoc"):
            status, kind, _ = server.get(path)
            assert (status, kind.split(";")[0]) == (200, "text/html"), path
        assert server.get("/schema/openapi.yaml")[0] == 200
    finally:
        server.stop()


@needs_curl
def test_the_api_walkthrough(tmp_path: Path) -> None:
    walkthrough = blocks_run_by(DOC, HERE, "test_the_api_walkthrough")
    server = start_server(_server_block("niaga serve"), cwd=tmp_path,
                          NIAGA_ADMIN_TOKEN="dev-admin")
    try:
        # one shell, as a reader pastes the blocks one after another; a line between the
        # blocks splits what each printed
        separator = "@@ block done @@"
        script = f"\necho '{separator}'\n".join(b.body for b in walkthrough)
        done = run_sh(script, cwd=tmp_path, port=server.port)
        assert done.returncode == 0, done.stderr
        printed = done.stdout.split(separator + "\n")
        assert len(printed) == len(walkthrough)
        for block, output in zip(walkthrough, printed, strict=True):
            _assert_prints_what_is_shown(block, output)
        assert all(_shown_output(b) for b in walkthrough), "each block shows what it prints"
    finally:
        server.stop()
