"""docs/getting-started.md, run as a reader runs it.

Each test takes the ```sh blocks whose ``<!-- run: -->`` marker names it
(tests/docs_blocks.py). A block that ends with ``make serve`` or ``niaga serve`` is started in
the background on a free port, in a temporary folder, with the commands before it run
first; the others run with bash against that server. ``make test`` is marked ``ci``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from tests.docs_blocks import DOCS, blocks_run_by, run_sh, start_server

DOC = DOCS / "getting-started.md"
HERE = __file__

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="the page uses curl")


def _blocks(test_name: str):
    return blocks_run_by(DOC, HERE, test_name)


def _first_order():
    return blocks_run_by(DOC, HERE, "test_make_serve_and_a_first_order")[1]


def _assert_first_order(done) -> None:
    assert done.returncode == 0, done.stderr
    # what the page says the block prints
    assert done.stdout.splitlines() == ["{'amount': '17.80', 'currency': 'EUR'}", "paid"], \
        done.stdout


@needs_curl
def test_make_serve_and_a_first_order(tmp_path: Path) -> None:
    serve, order = _blocks("test_make_serve_and_a_first_order")
    server = start_server(serve, cwd=tmp_path)
    try:
        assert "niaga: loaded demo data" in server.output
        assert "niaga: admin token" in server.output
        assert json.loads(server.get("/markets")[2])[0]["code"] == "ID"
        _assert_first_order(run_sh(order.body, cwd=tmp_path, port=server.port))
    finally:
        server.stop()
    assert (tmp_path / "niaga.sqlite").exists()  # SERVE_ARGS gave the test's own store


def test_make_demo(tmp_path: Path) -> None:
    (demo,) = _blocks("test_make_demo")
    done = run_sh(demo.body, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "niaga demo: done in" in done.stdout.splitlines()[-1]
    assert "picked_up" in done.stdout


def test_the_storefront(tmp_path: Path) -> None:
    (block,) = _blocks("test_the_storefront")
    server = start_server(block, cwd=tmp_path)
    try:
        assert f"storefront on http://127.0.0.1:{server.port}/shop/" in server.output
        status, kind, body = server.get("/shop/")
        assert (status, kind.split(";")[0]) == (200, "text/html"), (status, kind)
        assert "<html" in body.lower()
        status, _, body = server.get("/")  # redirected to the shop
        assert status == 200 and "<html" in body.lower()
    finally:
        server.stop()


@pytest.mark.postgres
def test_postgresql(tmp_path: Path) -> None:
    from tests.conftest import _pg_up

    if shutil.which("createdb") is None or not _pg_up():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL (and createdb) on 127.0.0.1:5432 are needed under CI")
        pytest.skip("no PostgreSQL server (or createdb) on 127.0.0.1:5432")
    (block,) = _blocks("test_postgresql")
    name = f"niaga_docs_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    assert "niaga_dev" in block.body
    block = type(block)(block.doc, block.line, block.lang,
                        block.body.replace("niaga_dev", name), block.before)
    try:
        server = start_server(block, cwd=tmp_path)
        try:
            assert "niaga: store PostgreSQL" in server.output
            assert "niaga: loaded demo data" in server.output
            assert {m["code"] for m in json.loads(server.get("/markets")[2])} == {
                "ID", "DE", "US", "JP"}
            _assert_first_order(run_sh(_first_order().body, cwd=tmp_path, port=server.port))
        finally:
            server.stop()
    finally:
        asyncio.run(_drop(name))


async def _drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres",
                                 database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@needs_curl
def test_your_own_markets(tmp_path: Path) -> None:
    (block,) = _blocks("test_your_own_markets")
    server = start_server(block, cwd=tmp_path)  # the block exports the key it needs
    try:
        assert "my-shop.toml: OK (1 markets)" in server.output, server.output
        # "the server then sells in Germany only"
        assert [m["code"] for m in json.loads(server.get("/markets")[2])] == ["DE"]
    finally:
        server.stop()
    assert (tmp_path / "my-shop.toml").exists() and (tmp_path / "my-shop.sqlite").exists()


@needs_curl
@pytest.mark.dynamodb
def test_the_aws_shape_locally(tmp_path: Path) -> None:
    pytest.importorskip("moto.server", reason="moto's server (pip install 'moto[server]')")
    (block,) = _blocks("test_the_aws_shape_locally")
    server = start_server(block, cwd=tmp_path, wait_s=90)
    try:
        out = server.output
        assert "niaga-local-Table" in out and "admin token" in out, out
        # "the first order above works unchanged against it and prints the same two lines"
        _assert_first_order(run_sh(_first_order().body, cwd=tmp_path, port=server.port))
    finally:
        server.stop()
