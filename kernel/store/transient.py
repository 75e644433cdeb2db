"""Store failures that say "busy, try again", not "broken": the API answers them 503 with
Retry-After instead of a 500. Nothing was committed when they are raised."""

from __future__ import annotations

import sqlite3

RETRY_AFTER_S = 1


def is_transient(exc: BaseException) -> bool:
    """SQLite's ``database is locked`` / ``busy`` (another process held the write lock past
    the busy timeout) and PostgreSQL's deadlock or serialization failure."""
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "locked" in text or "busy" in text
    return getattr(exc, "sqlstate", None) in ("40001", "40P01")  # asyncpg's errors
