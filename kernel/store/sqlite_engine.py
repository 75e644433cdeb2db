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
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory

BUSY_TIMEOUT_S = 30.0


class _Borrowed:
    """A pooled connection; ``close()`` gives it back instead of closing it."""

    def __init__(self, engine: PooledSQLiteEngine, conn: aiosqlite.Connection):
        self._engine = engine
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, sql: str, parameters: Any = None) -> Any:
        self._engine.statements += 1  # Piccolo's BEGIN / COMMIT / ROLLBACK
        return self._conn.execute(sql, parameters)

    async def close(self) -> None:
        if self._conn.in_transaction:  # never hand out a connection mid-transaction
            await self._conn.rollback()
        self._engine._pool.put_nowait(self._conn)


class _WriteTransaction(SQLiteTransaction):
    """A write transaction that queues on an in-process lock before ``BEGIN IMMEDIATE``.

    SQLite admits one writer at a time. Left to the busy handler, waiting writers
    sleep in growing steps that outlast the short transaction holding the lock;
    queueing them here hands the lock over at once. Other processes on the same
    file still meet the busy timeout.
    """

    async def __aenter__(self) -> SQLiteTransaction:
        if self._parent is not None or self.engine.current_transaction.get() is not None:
            return await super().__aenter__()
        await self.engine._write_lock.acquire()
        try:
            return await super().__aenter__()
        except BaseException:
            self.engine._write_lock.release()
            raise

    async def __aexit__(self, exception_type, exception, traceback) -> bool:
        try:
            return await super().__aexit__(exception_type, exception, traceback)
        finally:
            if self._parent is None:
                self.engine._write_lock.release()



class PooledSQLiteEngine(SQLiteEngine):
    def __init__(self, path: str, pool_size: int = 4, **kwargs: Any):
        kwargs.setdefault("timeout", BUSY_TIMEOUT_S)
        super().__init__(path=path, **kwargs)
        self._pool_size = pool_size
        self._pool: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._opened = 0
        self._write_lock = asyncio.Lock()
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
            # one hop to the connection's thread (execute + fetch); autocommit needs no COMMIT
            return list(await conn.execute_fetchall(query, args or []))
        finally:
            if conn.in_transaction:
                await conn.rollback()
            self._pool.put_nowait(conn)

    async def _run_in_existing_connection(self, connection: Any, query: str,
                                          args: list[Any] | None = None,
                                          query_type: str = "generic", table: Any = None):
        self.statements += 1
        return list(await connection.execute_fetchall(query, args or []))

    def transaction(self, transaction_type: TransactionType = TransactionType.deferred,
                    allow_nested: bool = True) -> SQLiteTransaction:
        if transaction_type is TransactionType.deferred:
            return super().transaction(transaction_type, allow_nested)
        return _WriteTransaction(engine=self, transaction_type=transaction_type,
                                 allow_nested=allow_nested)

    async def close_pool(self) -> None:
        while not self._pool.empty():
            await self._pool.get_nowait().close()
        self._opened = 0


def sqlite_version() -> tuple[int, int, int]:
    return sqlite3.sqlite_version_info
