"""Fault: SQLite ``database is locked``. Another process holds the write lock on the file
longer than the busy timeout (shortened here so the test is quick) while the real app takes
concurrent writes: every answer is a success or a 503 problem+json with Retry-After, never
a 500, and a refused write changed nothing. Writers inside one process queue on the
engine's lock (kernel/store/sqlite_engine.py); the multi-process race is in
test_sqlite_workers.py."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from litestar.testing import AsyncTestClient

from kernel.api.app import create_app
from kernel.demo import seed
from kernel.runtime import Niaga
from kernel.store import sqlite_engine
from kernel.store.sql import SqlStore
from tests.conftest import ADMIN_TOKEN

WRITERS = 12


async def test_writes_while_another_process_holds_the_lock_are_503_never_500(
        tmp_path, markets, monkeypatch):
    path = str(tmp_path / "locked.sqlite")
    store = SqlStore(path)
    await store.start()
    await store.create_schema()
    await seed(store, markets, 0.0)
    await store.close()
    monkeypatch.setattr(sqlite_engine, "BUSY_TIMEOUT_S", 0.2)

    app = create_app(Niaga(SqlStore(path), markets), admin_token=ADMIN_TOKEN)
    async with AsyncTestClient(app) as client:
        carts = [(await client.post("/carts", json={"market": "ID", "channel": "web"})).json()
                 for _ in range(WRITERS)]
        held, release = threading.Event(), threading.Event()

        def other_process() -> None:  # a second writer on the file (a CLI, a worker)
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(10)
            conn.execute("ROLLBACK")
            conn.close()

        holder = threading.Thread(target=other_process)
        holder.start()
        held.wait(5)
        try:
            answers = await asyncio.gather(*[
                client.post(f"/carts/{c['id']}/lines",
                            json={"sku": "TEA-JAVA-BLACK", "quantity": 1}) for c in carts])
        finally:
            release.set()
            holder.join()
        assert [r.status_code for r in answers if r.status_code not in (200, 503)] == []
        busy = [r for r in answers if r.status_code == 503]
        assert busy, "the lock was held past the busy timeout: some write must have waited"
        for r in busy:
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] == "busy" and int(r.headers["retry-after"]) >= 1
        # a refused write changed nothing; once the lock is gone the retry goes through
        for cart, r in zip(carts, answers, strict=True):
            lines = (await client.get(f"/carts/{cart['id']}")).json()["lines"]
            assert len(lines) == (1 if r.status_code == 200 else 0)
            if r.status_code == 503:
                again = await client.post(f"/carts/{cart['id']}/lines",
                                          json={"sku": "TEA-JAVA-BLACK", "quantity": 1})
                assert again.status_code == 200, again.text
