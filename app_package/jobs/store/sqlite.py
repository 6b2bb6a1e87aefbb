"""The single-host job store: one SQLite file (stdlib `sqlite3`), WAL journal, writes in
`BEGIN IMMEDIATE` transactions, so any number of server workers and job processes on one host
share it. Each job is a JSON document plus the columns that the supervisor and the job list
filter on (indexed, so a list of 100,000 jobs stays a query, not a scan)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pygeoapi.util import JobStatus

from app_package.jobs.store.base import JobQuery, JobStoreUnavailable, SQLDialect, first_line

SCHEMA_VERSION = 1
RUNNING, ACCEPTED = JobStatus.running.value, JobStatus.accepted.value
BUSY_TIMEOUT_S = 10.0  # a writer waits this long for another one before the store is "unavailable"
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    identifier TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    status TEXT NOT NULL,
    process_id TEXT NOT NULL,
    type TEXT NOT NULL,
    created TEXT NOT NULL,
    started_at REAL,
    finished_at REAL,
    owner TEXT,
    heartbeat REAL,
    idempotency_key TEXT
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created DESC, identifier);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created);
CREATE INDEX IF NOT EXISTS jobs_process ON jobs (process_id, created);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (process_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
"""
# the columns derived from the document on every write
_COLUMNS = (
    "status",
    "process_id",
    "type",
    "created",
    "started_at",
    "finished_at",
    "owner",
    "idempotency_key",
)


def _dialect(now: float) -> SQLDialect:
    return SQLDialect(
        param="?",
        status="status",
        process_id="process_id",
        type="type",
        created="created",
        started="started_at",
        duration="(coalesce(finished_at, ?) - started_at)",
        duration_args=(now,),
    )


def _epoch(stamp: Any) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def _columns(doc: dict[str, Any]) -> tuple[Any, ...]:
    return (
        doc["status"],
        doc["process_id"],
        doc.get("type", "process"),
        doc["created"],
        _epoch(doc.get("started")),
        _epoch(doc.get("finished")),
        doc.get("owner"),
        doc.get("idempotency_key"),
    )


class SQLiteStore:
    """Job records in one SQLite file; one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path).resolve()
        self.url = str(self.path)
        self._local = threading.local()
        self._writer = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    # ------------------------------------------------------------ connections
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a job is on disk before its call returns
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                try:  # one script, one transaction (executescript commits what is pending)
                    conn.executescript(
                        f"BEGIN IMMEDIATE;\n{SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\n"
                        "COMMIT;"
                    )
                except sqlite3.Error:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except (sqlite3.Error, OSError) as e:
            raise JobStoreUnavailable(f"job store {self.path}: {first_line(e)}") from e
        self._local.conn = conn
        with self._all_lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (the database's write lock taken at once). This process's
        threads queue for it on a lock of their own: SQLite's busy handler waits in sleeps of
        up to 100 ms, which would be the latency of every request behind a busy writer."""
        conn = self._conn()
        try:
            with self._writer, _transaction(conn):
                yield conn
        except sqlite3.OperationalError as e:
            raise JobStoreUnavailable(f"job store {self.path}: {first_line(e)}") from e

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            raise JobStoreUnavailable(f"job store {self.path}: {first_line(e)}") from e

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # ------------------------------------------------------------ operations
    def add_unique(self, job: dict[str, Any], key: str | None) -> dict[str, Any]:
        with self._write() as conn:
            if key:
                row = conn.execute(
                    "SELECT doc FROM jobs WHERE process_id = ? AND idempotency_key = ?",
                    (job["process_id"], key),
                ).fetchone()
                if row is not None:
                    return dict(json.loads(row[0]))
            _insert(conn, job)
        return job

    def add_many(self, jobs: list[dict[str, Any]]) -> None:
        with self._write() as conn:
            for job in jobs:
                _insert(conn, job)

    def get(self, job_id: str) -> dict[str, Any] | None:
        rows = self._read("SELECT doc FROM jobs WHERE identifier = ?", (job_id,))
        return dict(json.loads(rows[0][0])) if rows else None

    def page(self, query: JobQuery) -> tuple[list[dict[str, Any]], int]:
        where, args = _dialect(time.time()).where(query)
        count = self._read(f"SELECT count(*) FROM jobs {where}", args)[0][0]
        limit = -1 if query.limit is None else query.limit
        rows = self._read(
            f"SELECT doc FROM jobs {where} ORDER BY created DESC, identifier LIMIT ? OFFSET ?",
            (*args, limit, query.offset),
        )
        jobs = []
        for (doc,) in rows:
            job = json.loads(doc)
            job.pop("spec", None)
            jobs.append(job)
        return jobs, int(count)

    def update(
        self,
        job_id: str,
        fields: dict[str, Any],
        statuses: set[str] | None = None,
        owner: str | None = None,
    ) -> bool:
        with self._write() as conn:
            row = conn.execute("SELECT doc FROM jobs WHERE identifier = ?", (job_id,)).fetchone()
            if row is None:
                return False
            doc = json.loads(row[0])
            if statuses is not None and doc["status"] not in statuses:
                return False
            if owner is not None and str(doc.get("owner") or "") != owner:
                return False
            doc.update(fields)
            _store(conn, doc)
        return True

    def claim(self, owner: str, max_running: int, fields: dict[str, Any]) -> list[dict[str, Any]]:
        with self._write() as conn:  # the write lock: the count stays true until commit
            running = conn.execute("SELECT count(*) FROM jobs WHERE status = ?", (RUNNING,))
            free = max_running - int(running.fetchone()[0])
            if free <= 0:
                return []
            rows = conn.execute(
                "SELECT doc FROM jobs WHERE status = ? ORDER BY created, identifier LIMIT ?",
                (ACCEPTED, free),
            ).fetchall()
            claimed = []
            now = time.time()
            for (text,) in rows:
                doc = {**json.loads(text), **fields, "status": RUNNING, "owner": owner}
                _store(conn, doc, heartbeat=now)
                claimed.append(doc)
        return claimed

    def heartbeat(self, owner: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET heartbeat = ? WHERE owner = ? AND status = ?",
                (time.time(), owner, RUNNING),
            )

    def running(self) -> list[tuple[dict[str, Any], float]]:
        rows = self._read("SELECT doc, heartbeat FROM jobs WHERE status = ?", (RUNNING,))
        now = time.time()
        return [
            (json.loads(doc), now - beat if beat is not None else float("inf"))
            for doc, beat in rows
        ]

    def flagged(self, field: str, statuses: set[str]) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(statuses))
        rows = self._read(
            f"SELECT doc FROM jobs WHERE status IN ({marks}) "
            "AND coalesce(json_extract(doc, ?), '') <> ''",
            (*sorted(statuses), f"$.{field}"),
        )
        return [json.loads(doc) for (doc,) in rows]


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _insert(conn: sqlite3.Connection, doc: dict[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO jobs (identifier, doc, {', '.join(_COLUMNS)}) "
        f"VALUES (?, ?, {', '.join('?' * len(_COLUMNS))})",
        (doc["identifier"], json.dumps(doc), *_columns(doc)),
    )


def _store(conn: sqlite3.Connection, doc: dict[str, Any], heartbeat: float | None = None) -> None:
    sets = ", ".join(f"{c} = ?" for c in _COLUMNS)
    args: tuple[Any, ...] = (json.dumps(doc), *_columns(doc))
    if heartbeat is not None:
        sets += ", heartbeat = ?"
        args = (*args, heartbeat)
    conn.execute(
        f"UPDATE jobs SET doc = ?, {sets} WHERE identifier = ?", (*args, doc["identifier"])
    )
