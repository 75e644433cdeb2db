"""Piccolo's SQLite engine with a small pool of long-lived connections.

Piccolo opens a new aiosqlite connection (a new thread) for every query and
re-sends ``PRAGMA foreign_keys`` before each statement. That alone costs
milliseconds per checkout, so we keep a few connections open (WAL mode, a busy
timeout so writers queue instead of failing with "database is locked") and
hand them to Piccolo's own transactions and queries.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import aiosqlite
from piccolo.engine.sqlite import SQLiteEngine, dict_factory

BUSY_TIMEOUT_S = 30.0


class _Borrowed:
    """A pooled connection; ``close()`` gives it back instead of closing it."""

    def __init__(self, engine: PooledSQLiteEngine, conn: aiosqlite.Connection):
        self._engine = engine
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, sql: str, parameters: Any = None) -> Any:
        self._engine.statements += 1  # BEGIN/COMMIT and statements inside transactions
        return self._conn.execute(sql, parameters)

    async def close(self) -> None:
        if self._conn.in_transaction:  # never hand out a connection mid-transaction
            await self._conn.rollback()
        self._engine._pool.put_nowait(self._conn)


class PooledSQLiteEngine(SQLiteEngine):
    def __init__(self, path: str, pool_size: int = 4, **kwargs: Any):
        kwargs.setdefault("timeout", BUSY_TIMEOUT_S)
        super().__init__(path=path, **kwargs)
        self._pool_size = pool_size
        self._pool: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._opened = 0
        self.statements = 0  # counted for the benchmark's "SQL per checkout"

    async def _open(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(**self.connection_kwargs)
        conn.row_factory = dict_factory  # type: ignore[assignment]
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = 1",
                       f"busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}"):
            await conn.execute(f"PRAGMA {pragma}")
        return conn

    async def _borrow(self) -> aiosqlite.Connection:
        if self._pool.empty() and self._opened < self._pool_size:
            self._opened += 1
            try:
                return await self._open()
            except Exception:
                self._opened -= 1
                raise
        return await self._pool.get()

    async def get_connection(self) -> Any:  # used by Piccolo's transactions
        return _Borrowed(self, await self._borrow())

    async def _run_in_new_connection(self, query: str, args: list[Any] | None = None,
                                     query_type: str = "generic", table: Any = None):
        conn = await self._borrow()
        try:
            self.statements += 1
            async with conn.execute(query, args or []) as cursor:
                rows = await cursor.fetchall()
            await conn.commit()
            return rows
        finally:
            if conn.in_transaction:
                await conn.rollback()
            self._pool.put_nowait(conn)

    async def _run_in_existing_connection(self, connection: Any, query: str,
                                          args: list[Any] | None = None,
                                          query_type: str = "generic", table: Any = None):
        async with connection.execute(query, args or []) as cursor:
            return await cursor.fetchall()

    async def close_pool(self) -> None:
        while not self._pool.empty():
            await self._pool.get_nowait().close()
        self._opened = 0


def sqlite_version() -> tuple[int, int, int]:
    return sqlite3.sqlite_version_info
