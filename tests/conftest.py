"""Shared fixtures: real stores (SQLite file, PostgreSQL database), a wired Niaga, an HTTP client.

PostgreSQL tests use a throw-away database on 127.0.0.1:5432 (created once per
session, emptied between tests). Locally they are skipped when no server
answers; under CI (CI=true) a missing server is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel.demo import seed
from kernel.markets import Market, demo_markets_path, load_markets
from kernel.runtime import Niaga
from kernel.store.base import Store
from kernel.store.sql import SqlStore

PG_HOST, PG_PORT = "127.0.0.1", 5432
ADMIN_TOKEN = "adm_test_token"


def _pg_up() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; dropped at the end."""
    if not _pg_up():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not running on 127.0.0.1:5432 (.ci/run should start it)")
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import asyncpg

    name = f"niaga_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres",
                                     database="postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    asyncio.run(_create_schema(url))
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _create_schema(url: str) -> None:
    store = open_store(url)
    await store.start()
    try:
        await store.create_schema()
    finally:
        await store.close()


async def _truncate(url: str) -> None:
    store = SqlStore(url)
    await store.start()
    try:
        names = ", ".join(t._meta.tablename for t in store.t.all)
        await store.t.product.raw(f"TRUNCATE {names}")
    finally:
        await store.close()


SQL_ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
# DynamoDB (moto, in-process) runs the storage contract suite and the HTTP API suite; the
# service and plugin suites stay on the SQL engines (they test the kernel, not the store)
DYNAMO_ENGINE = pytest.param("dynamodb", marks=pytest.mark.dynamodb)
DYNAMO_SUITES = ("contract", "api", "faults")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``store_url`` (and so ``store``, ``niaga``, ``client``) once per engine."""
    if "store_url" not in metafunc.fixturenames:
        return
    suite = Path(str(metafunc.definition.path)).parent.name
    engines = [*SQL_ENGINES, *([DYNAMO_ENGINE] if suite in DYNAMO_SUITES else [])]
    metafunc.parametrize("store_url", engines, indirect=True)


@pytest.fixture
def aws_mock() -> Iterator[None]:
    """moto's in-process AWS for one test: every boto3 client made meanwhile talks to it."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store with its schema, once per engine."""
    if request.param == "sqlite":
        url = str(tmp_path / "niaga.sqlite")
    elif request.param == "dynamodb":
        request.getfixturevalue("aws_mock")  # the table lives as long as the test
        url = f"dynamodb://niaga-test-{uuid.uuid4().hex[:8]}"
    else:
        url = request.getfixturevalue("pg_database")
        asyncio.run(_truncate(url))
        return url
    asyncio.run(_create_schema(url))
    return url


class _Serialized:
    """A boto3 client whose calls run one at a time. DynamoDB applies each request
    atomically; moto's in-process backend does not lock (a transaction snapshots and
    restores the whole table), so concurrent tests need this to model the real service."""

    def __init__(self, client: Any):
        self._client = client
        self._lock = threading.Lock()
        self.exceptions = client.exceptions
        self.meta = client.meta

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("get_waiter"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


def open_store(url: str, **kwargs: Any) -> Store:
    """The store behind a ``store_url`` (not started). A DynamoDB one needs moto active
    (the ``aws_mock`` fixture, which ``store_url`` requests for it)."""
    if url.startswith("dynamodb://"):
        import boto3

        from kernel.store.dynamodb import DynamoStore

        client = boto3.client("dynamodb", region_name="eu-central-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        return DynamoStore(url.removeprefix("dynamodb://"), client=_Serialized(client))
    return SqlStore(url, **kwargs)


@pytest.fixture(name="open_store")
def _open_store() -> Any:
    """``open_store(store_url)``: a store object on the test's store, for app factories."""
    return open_store


@pytest.fixture
def markets() -> dict[str, Market]:
    return load_markets(demo_markets_path())


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open, empty store: SQLite, PostgreSQL, and DynamoDB for the contract suite."""
    s = open_store(store_url, pool_size=8)
    await s.start()
    yield s
    await s.close()


@pytest.fixture
async def niaga(store: Store, markets: dict[str, Market]) -> AsyncIterator[Niaga]:
    """A wired kernel on the demo markets and catalog."""
    ctx = Niaga(store, markets)
    await seed(store, markets, ctx.clock())
    yield ctx
    await ctx.dispatcher.stop()


@pytest.fixture
def seeded_url(store_url: str, markets: dict[str, Market]) -> str:
    async def run() -> None:
        s = open_store(store_url)
        await s.start()
        try:
            await seed(s, markets, 0.0)
        finally:
            await s.close()

    asyncio.run(run())
    return store_url


@pytest.fixture
def client(seeded_url: str, markets: dict[str, Market]) -> Iterator:
    """Litestar's test client on the real app over a seeded store (every engine)."""
    from litestar.testing import TestClient

    from kernel.api.app import create_app

    app = create_app(Niaga(open_store(seeded_url), markets), admin_token=ADMIN_TOKEN)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(autouse=True)
def _reset_testpay() -> Iterator[None]:
    from plugins.payments.testpay import TestPay

    TestPay.reset()
    yield


@pytest.fixture
def serialized_client():
    """Wrap a moto boto3 client so its calls run one at a time, as the real service applies
    each call atomically."""
    return _Serialized

