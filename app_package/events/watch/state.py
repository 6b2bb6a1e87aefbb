"""The watcher's state: one sqlite row per item, keyed by its idempotency key, so every item
is claimed, submitted and published exactly once across restarts and processes."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app_package.jobs.records import TERMINAL_VALUES
from app_package.util.timestamps import now_rfc3339

logger = logging.getLogger(__name__)


SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    collection TEXT,
    href TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    job_id TEXT,
    job_url TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    leased_until REAL NOT NULL DEFAULT 0,
    error TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    event TEXT,
    published TEXT
);
CREATE INDEX IF NOT EXISTS items_state ON items (state);
"""


class StateStore:
    """The watcher's sqlite state: one row per item, keyed by its idempotency key."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._migrate()

    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION (`PRAGMA user_version`), once, in one transaction.

        Version 0 is a new file or one of the releases before versioning, whose `items` table
        may lack the event bus's columns (`event`, `published`)."""
        if self._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        with self._tx() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            columns = {r[1] for r in db.execute("PRAGMA table_info(items)")}
            for column in ("event", "published"):
                if column not in columns:
                    db.execute(f"ALTER TABLE items ADD COLUMN {column} TEXT")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def claim(
        self,
        key: str,
        item_id: str,
        collection: str | None,
        href: str,
        source: str,
        event: str | None = None,
    ) -> bool:
        """Record a new item as `pending` (with the CloudEvent to publish for it, if any);
        False when the key is already known."""
        t = now_rfc3339()
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO items (key, item_id, collection, href, source, state, "
                "created, updated, event) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                (key, item_id, collection, href, source, t, t, event),
            )
            return cur.rowcount == 1

    def unpublished(self) -> list[dict[str, Any]]:
        """Rows whose CloudEvent is still to be published."""
        with self._lock:
            cur = self._db.execute(
                "SELECT * FROM items WHERE event IS NOT NULL AND published IS NULL "
                "ORDER BY created, key"
            )
            return [dict(r) for r in cur.fetchall()]

    def mark_published(self, key: str, entry: str, state: str | None = None) -> None:
        """Record the stream entry of the item's event (`state`: the row's new state)."""
        with self._tx() as db:
            db.execute(
                "UPDATE items SET published = ?, state = COALESCE(?, state), updated = ? "
                "WHERE key = ?",
                (entry, state, now_rfc3339(), key),
            )

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM items WHERE key = ?", (key,)).fetchone()
        return dict(row) if row else None

    def rows(self, state: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if state is None:
                cur = self._db.execute("SELECT * FROM items ORDER BY created, key")
            else:
                cur = self._db.execute(
                    "SELECT * FROM items WHERE state = ? ORDER BY created, key", (state,)
                )
            return [dict(r) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        with self._lock:
            cur = self._db.execute("SELECT state, COUNT(*) FROM items GROUP BY state")
            return {str(s): int(n) for s, n in cur.fetchall()}

    def due(self, now: float, ignore_backoff: bool = False) -> list[dict[str, Any]]:
        """Pending rows whose next attempt is due (any, with `ignore_backoff`), not leased."""
        with self._lock:
            cur = self._db.execute(
                "SELECT * FROM items WHERE state = 'pending' AND (? OR next_attempt <= ?) "
                "AND leased_until <= ? ORDER BY created, key",
                (ignore_backoff, now, now),
            )
            return [dict(r) for r in cur.fetchall()]

    def lease(self, key: str, now: float, seconds: float) -> int | None:
        """Take a pending row for one attempt; returns the attempt number, None if taken."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE items SET leased_until = ?, attempts = attempts + 1, updated = ? "
                "WHERE key = ? AND state = 'pending' AND leased_until <= ?",
                (now + seconds, now_rfc3339(), key, now),
            )
            if cur.rowcount != 1:
                return None
            row = db.execute("SELECT attempts FROM items WHERE key = ?", (key,)).fetchone()
            return int(row[0])

    def submitted(self, key: str, job_id: str, job_url: str, status: str) -> None:
        state = status if status in TERMINAL_VALUES else "submitted"
        with self._tx() as db:
            db.execute(
                "UPDATE items SET state = ?, job_id = ?, job_url = ?, leased_until = 0, "
                "error = NULL, updated = ? WHERE key = ?",
                (state, job_id, job_url, now_rfc3339(), key),
            )

    def retry_later(self, key: str, error: str, next_attempt: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE items SET error = ?, next_attempt = ?, leased_until = 0, updated = ? "
                "WHERE key = ? AND state = 'pending'",
                (error, next_attempt, now_rfc3339(), key),
            )

    def finish(self, key: str, state: str, error: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE items SET state = ?, error = ?, leased_until = 0, updated = ? "
                "WHERE key = ?",
                (state, error, now_rfc3339(), key),
            )
