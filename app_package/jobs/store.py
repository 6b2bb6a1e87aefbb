"""Where job records live: a TinyDB file (one server process) or PostgreSQL (shared by many).

A job record is a JSON object (`identifier`, `status`, `progress`, timestamps, the job's `spec`,
and while it runs its `owner` worker and `pid`). Both stores offer the same operations; the ones
that matter for several workers are atomic: `claim` moves queued jobs to `running` without ever
exceeding the concurrency limit summed over all workers, `update(..., statuses=…)` changes a job
only while it is in one of the given states (no race between a finishing child and a dismiss),
and `add_unique` gives one job per `Idempotency-Key`.

`open_store(connection)` chooses by the connection string: `postgresql://…` (or `postgres://`)
is PostgreSQL, anything else a TinyDB file path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, LifoQueue
from typing import TYPE_CHECKING, Any, Protocol

from app_package.errors import ServiceError

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

TABLE = "app_package_jobs"
CLAIM_LOCK = 0x6A6F6273  # pg advisory lock key ("jobs"): one claimer at a time, all workers
SCHEMA_LOCK = 0x6A6F6274


class JobStoreUnavailable(ServiceError):
    """The job store cannot be reached (PostgreSQL down or restarting): try again later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class JobStore(Protocol):
    """The operations the job manager and its children need."""

    url: str  # what a child process is given to open the same store
    shared: bool  # whether several server processes may use it at once

    def add_unique(self, job: dict[str, Any], key: str | None) -> dict[str, Any]:
        """Insert `job`; with an idempotency `key`, return the existing job for it instead."""
        ...

    def get(self, job_id: str) -> dict[str, Any] | None: ...

    def page(
        self, status: str | None, limit: int | None, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of jobs, newest first (without their specs), and how many matched."""
        ...

    def update(self, job_id: str, fields: dict[str, Any], statuses: set[str] | None = None) -> bool:
        """Merge `fields` into a job, only while its status is in `statuses` if given."""
        ...

    def claim(self, owner: str, max_running: int, fields: dict[str, Any]) -> list[dict[str, Any]]:
        """Move the oldest queued jobs to `running` for `owner`, keeping ≤ `max_running` running."""
        ...

    def heartbeat(self, owner: str) -> None:
        """Mark `owner`'s running jobs as alive now."""
        ...

    def running(self) -> list[tuple[dict[str, Any], float]]:
        """Every running job with the seconds since its owner's last heartbeat."""
        ...

    def flagged(self, field: str, statuses: set[str]) -> list[dict[str, Any]]:
        """The jobs in `statuses` whose `field` is a non-empty string (work left to do)."""
        ...

    def close(self) -> None: ...


def is_postgres(connection: str) -> bool:
    return connection.startswith(("postgresql://", "postgres://"))


def open_store(connection: str) -> JobStore:
    """The store a `manager.connection` setting names (a TinyDB path or a PostgreSQL URL)."""
    if is_postgres(connection):
        return PostgresStore(connection)
    return TinyDBStore(Path(connection))


# ---------------------------------------------------------------- TinyDB
def _orjson_storage() -> type:
    """TinyDB's JSON file storage, reading and writing with orjson: the whole file is parsed and
    rewritten on every access, and with 100 jobs (85 KB) the standard library takes 1.6 ms for
    a read and a write, orjson 0.4 ms, on every request and every job's progress update. The
    file stays plain JSON, written and fsynced as TinyDB's own storage does."""
    import orjson
    from tinydb.storages import JSONStorage

    class OrjsonStorage(JSONStorage):
        """Opened per `TinyDBStore._db()`, i.e. under the file lock: the file cannot change
        behind it, so it is parsed once per opening, not once per TinyDB operation."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._data: dict[str, dict[str, Any]] | None = None

        def read(self) -> dict[str, dict[str, Any]] | None:
            if self._data is None:
                self._handle.seek(0)
                text = self._handle.read()
                self._data = orjson.loads(text) if text else None
            return self._data

        def write(self, data: dict[str, dict[str, Any]]) -> None:
            self._data = data
            self._handle.seek(0)
            self._handle.write(orjson.dumps(data).decode())
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.truncate()

    return OrjsonStorage


class TinyDBStore:
    """One JSON file, shared with the job children through a file lock (one server process)."""

    shared = False

    def __init__(self, path: Path) -> None:
        from filelock import FileLock

        self.path = path.resolve()
        self.url = str(self.path)
        self._lock = FileLock(f"{self.path}.lock")
        self._tlock = threading.Lock()
        self._storage = _orjson_storage()
        self._queued: list[_Insert] = []  # new jobs waiting for the next write (group commit)
        self._qlock = threading.Lock()

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        # threads of this process queue on a plain lock
        with self._tlock, self._open() as db:
            yield db

    @contextlib.contextmanager
    def _open(self) -> Iterator[Any]:
        """The database under the file lock (the caller holds `_tlock`). The file lock, shared
        with the job children, is polled briefly: its default 50 ms poll would dominate request
        latency."""
        import tinydb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (
            self._lock.acquire(poll_interval=0.002),
            tinydb.TinyDB(self.path, storage=self._storage, encoding="utf-8") as db,
        ):
            yield db

    def add_unique(self, job: dict[str, Any], key: str | None) -> dict[str, Any]:
        """Insert `job` (or return the job already stored under `key`), durably, before returning.

        Group commit: every file write rewrites and fsyncs the whole file, so the thread that
        gets the store writes all jobs queued by the threads waiting behind it in one write.
        Each job is stored before its own call returns; a failed write fails every job in it.
        """
        mine = _Insert(job, key)
        with self._qlock:
            self._queued.append(mine)
        try:
            with self._tlock:
                if not mine.done:
                    with self._qlock:
                        batch, self._queued = self._queued, []
                    try:
                        with self._open() as db:
                            _insert_batch(db, batch)
                    except BaseException as e:
                        for item in batch:
                            item.error = e
                        raise
                    finally:
                        for item in batch:
                            item.done = True
        except BaseException:
            with self._qlock:  # never written later by another thread once this call failed
                if mine in self._queued:
                    self._queued.remove(mine)
            raise
        if mine.error is not None:
            raise mine.error
        assert mine.stored is not None
        return mine.stored

    def get(self, job_id: str) -> dict[str, Any] | None:
        import tinydb

        with self._db() as db:
            found = db.search(tinydb.where("identifier") == job_id)
        return dict(found[0]) if found else None

    def page(
        self, status: str | None, limit: int | None, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        with self._db() as db:
            jobs = [dict(j) for j in db.all()]
        if status is not None:
            jobs = [j for j in jobs if j["status"] == status]
        jobs.sort(key=lambda j: j["identifier"])
        jobs.sort(key=lambda j: j["created"], reverse=True)  # stable: ties by identifier
        page = jobs[offset:][:limit] if limit else jobs[offset:]
        for job in page:
            job.pop("spec", None)
        return page, len(jobs)

    def update(self, job_id: str, fields: dict[str, Any], statuses: set[str] | None = None) -> bool:
        import tinydb

        q = tinydb.Query()
        cond = q.identifier == job_id
        if statuses is not None:
            cond = cond & q.status.one_of(statuses)
        with self._db() as db:
            if not db.contains(cond):
                return False  # TinyDB would rewrite (and fsync) the file all the same
            return bool(db.update(fields, cond))

    def claim(self, owner: str, max_running: int, fields: dict[str, Any]) -> list[dict[str, Any]]:
        with self._db() as db:
            jobs = db.all()
            free = max_running - sum(1 for j in jobs if j["status"] == "running")
            queued = sorted((j for j in jobs if j["status"] == "accepted"), key=_created)
            chosen = queued[: max(0, free)]
            if not chosen:
                return []
            merged = {**fields, "status": "running", "owner": owner, "heartbeat": time.time()}
            db.update(merged, doc_ids=[j.doc_id for j in chosen])  # one write for all
        return [{**j, **merged} for j in chosen]

    def heartbeat(self, owner: str) -> None:
        import tinydb

        q = tinydb.Query()
        with self._db() as db:
            db.update({"heartbeat": time.time()}, (q.owner == owner) & (q.status == "running"))

    def running(self) -> list[tuple[dict[str, Any], float]]:
        import tinydb

        with self._db() as db:
            found = db.search(tinydb.where("status") == "running")
        t = time.time()
        return [(dict(j), t - float(j.get("heartbeat") or 0.0)) for j in found]

    def flagged(self, field: str, statuses: set[str]) -> list[dict[str, Any]]:
        with self._db() as db:
            return [dict(j) for j in db.all() if j["status"] in statuses and j.get(field)]

    def close(self) -> None:
        pass


@dataclass(eq=False)
class _Insert:
    """One `add_unique` call waiting for a group write."""

    job: dict[str, Any]
    key: str | None
    done: bool = False
    stored: dict[str, Any] | None = None  # the job that holds the key: this one or an older one
    error: BaseException | None = None


def _insert_batch(db: Any, batch: list[_Insert]) -> None:
    """Insert the batch's jobs in one write; a key already stored, or earlier in the batch,
    gives that job instead of a new one."""
    import tinydb

    q = tinydb.Query()
    new: list[dict[str, Any]] = []
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for item in batch:
        if item.key:
            kk = (item.key, str(item.job["process_id"]))
            if kk not in by_key:
                found = db.search((q.idempotency_key == kk[0]) & (q.process_id == kk[1]))
                by_key[kk] = dict(found[0]) if found else item.job
                if not found:
                    new.append(item.job)
            item.stored = by_key[kk]
        else:
            new.append(item.job)
            item.stored = item.job
    if new:
        db.insert_multiple(new)


def _created(job: Any) -> str:
    return str(job["created"])


# ---------------------------------------------------------------- PostgreSQL
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    identifier text PRIMARY KEY,
    doc jsonb NOT NULL,
    status text GENERATED ALWAYS AS (doc->>'status') STORED,
    created text GENERATED ALWAYS AS (doc->>'created') STORED,
    owner text,
    heartbeat timestamptz
);
CREATE INDEX IF NOT EXISTS {TABLE}_status ON {TABLE} (status, created);
CREATE UNIQUE INDEX IF NOT EXISTS {TABLE}_idempotency
    ON {TABLE} ((doc->>'process_id'), (doc->>'idempotency_key'))
    WHERE doc ? 'idempotency_key';
"""


class PostgresStore:
    """A `jsonb` table; a small connection pool; every operation one short transaction.

    Errors reaching the server raise `JobStoreUnavailable` (callers answer 503 and retry); a
    broken pooled connection (the server restarted) is dropped and the operation tried once more
    on a new one.
    """

    shared = True

    def __init__(self, url: str, pool_size: int = 8, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._idle: LifoQueue[psycopg.Connection[Any]] = LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._schema_ready = False

    # ------------------------------------------------------------ connections
    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(1, int(self.timeout_s)),
            options="-c statement_timeout=15000",
            application_name="app-package",
        )
        if not self._schema_ready:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                conn.execute(SCHEMA)
            self._schema_ready = True
        return conn

    def _run(self, op: Any) -> Any:
        """`op(conn)` on a pooled connection; retried once if a pooled connection was broken."""
        import psycopg

        if not self._slots.acquire(timeout=self.timeout_s):
            raise JobStoreUnavailable(
                f"job store {redact(self.url)}: no free connection within {self.timeout_s} s"
            )
        try:
            for attempt in (0, 1):
                conn = None
                pooled = False
                try:
                    with contextlib.suppress(Empty):
                        conn = self._idle.get_nowait()
                        pooled = True
                    if conn is None or conn.closed:
                        conn, pooled = self._connect(), False
                    result = op(conn)
                except psycopg.OperationalError as e:
                    if conn is not None:
                        conn.close()
                    self._drop_idle()  # after a server restart they are all broken
                    if pooled and attempt == 0:
                        continue
                    raise JobStoreUnavailable(
                        f"job store {redact(self.url)} unavailable: {_first_line(e)}; "
                        "check that PostgreSQL is running (APP_PACKAGE_JOB_STORE)"
                    ) from e
                except BaseException:
                    if conn is not None:
                        conn.close()
                    raise
                self._idle.put(conn)
                return result
            raise AssertionError("unreachable")
        finally:
            self._slots.release()

    def _drop_idle(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except Empty:
                return

    def close(self) -> None:
        self._drop_idle()

    # ------------------------------------------------------------ operations
    def add_unique(self, job: dict[str, Any], key: str | None) -> dict[str, Any]:
        from psycopg.types.json import Jsonb

        def op(conn: psycopg.Connection[Any]) -> dict[str, Any]:
            row = conn.execute(
                f"INSERT INTO {TABLE} (identifier, doc) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING RETURNING doc",
                (job["identifier"], Jsonb(job)),
            ).fetchone()
            if row is not None:
                return dict(row[0])
            found = conn.execute(
                f"SELECT doc FROM {TABLE} WHERE identifier = %s OR "
                "(doc->>'process_id' = %s AND doc->>'idempotency_key' = %s)",
                (job["identifier"], job["process_id"], key),
            ).fetchone()
            if found is None:  # pragma: no cover - a conflict means a row exists
                raise JobStoreUnavailable("job store: conflicting job vanished; submit again")
            return dict(found[0])

        return dict(self._run(op))

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self._run(
            lambda c: c.execute(
                f"SELECT doc FROM {TABLE} WHERE identifier = %s", (job_id,)
            ).fetchone()
        )
        return None if row is None else dict(row[0])

    def page(
        self, status: str | None, limit: int | None, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        where = "WHERE status = %s" if status is not None else ""
        args: tuple[Any, ...] = (status,) if status is not None else ()

        def op(conn: psycopg.Connection[Any]) -> tuple[list[dict[str, Any]], int]:
            count = conn.execute(f"SELECT count(*) FROM {TABLE} {where}", args).fetchone()
            rows = conn.execute(
                f"SELECT doc - 'spec' FROM {TABLE} {where} "
                "ORDER BY created DESC, identifier LIMIT %s OFFSET %s",
                (*args, limit, offset),
            ).fetchall()
            return [dict(r[0]) for r in rows], int(count[0] if count else 0)

        jobs, matched = self._run(op)
        return jobs, matched

    def update(self, job_id: str, fields: dict[str, Any], statuses: set[str] | None = None) -> bool:
        from psycopg.types.json import Jsonb

        sql = f"UPDATE {TABLE} SET doc = doc || %s WHERE identifier = %s"
        args: tuple[Any, ...] = (Jsonb(fields), job_id)
        if statuses is not None:
            sql += " AND status = ANY(%s)"
            args = (*args, sorted(statuses))
        return bool(self._run(lambda c: c.execute(sql, args).rowcount))

    def claim(self, owner: str, max_running: int, fields: dict[str, Any]) -> list[dict[str, Any]]:
        from psycopg.types.json import Jsonb

        def op(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            with conn.transaction():
                # one claimer at a time over all workers: the count below stays true until commit
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
                row = conn.execute(
                    f"SELECT count(*) FROM {TABLE} WHERE status = 'running'"
                ).fetchone()
                free = max_running - int(row[0] if row else 0)
                if free <= 0:
                    return []
                ids = conn.execute(
                    f"SELECT identifier FROM {TABLE} WHERE status = 'accepted' "
                    "ORDER BY created LIMIT %s FOR UPDATE SKIP LOCKED",
                    (free,),
                ).fetchall()
                if not ids:
                    return []
                merged = {**fields, "status": "running", "owner": owner}
                rows = conn.execute(
                    f"UPDATE {TABLE} SET doc = doc || %s, owner = %s, heartbeat = now() "
                    "WHERE identifier = ANY(%s) RETURNING doc",
                    (Jsonb(merged), owner, [r[0] for r in ids]),
                ).fetchall()
            return sorted((dict(r[0]) for r in rows), key=_created)

        return list(self._run(op))

    def heartbeat(self, owner: str) -> None:
        self._run(
            lambda c: c.execute(
                f"UPDATE {TABLE} SET heartbeat = now() WHERE owner = %s AND status = 'running'",
                (owner,),
            )
        )

    def running(self) -> list[tuple[dict[str, Any], float]]:
        rows = self._run(
            lambda c: c.execute(
                f"SELECT doc - 'spec', extract(epoch FROM now() - heartbeat) FROM {TABLE} "
                "WHERE status = 'running'"
            ).fetchall()
        )
        return [(dict(doc), float(age) if age is not None else float("inf")) for doc, age in rows]

    def flagged(self, field: str, statuses: set[str]) -> list[dict[str, Any]]:
        rows = self._run(
            lambda c: c.execute(
                f"SELECT doc - 'spec' FROM {TABLE} WHERE status = ANY(%s) "
                "AND coalesce(doc->>%s, '') <> ''",
                (sorted(statuses), field),
            ).fetchall()
        )
        return [dict(r[0]) for r in rows]


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def redact(url: str) -> str:
    """A connection URL without its password (for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
