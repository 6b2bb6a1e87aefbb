"""The job store shared by workers on any hosts: PostgreSQL (psycopg 3, `psycopg_pool`).

One `jsonb` document per job with generated columns for what the supervisor and the job list
filter on; every operation one short transaction; claims serialised by an advisory lock. A
server that cannot be reached raises `JobStoreUnavailable` (callers answer 503 and retry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pygeoapi.util import JobStatus

from app_package.jobs.store.base import JobQuery, JobStoreUnavailable, SQLDialect, first_line
from app_package.util.redact import redact

if TYPE_CHECKING:
    import psycopg

TABLE = "app_package_jobs"
CLAIM_LOCK = 0x6A6F6273  # pg advisory lock key ("jobs"): one claimer at a time, all workers
SCHEMA_LOCK = 0x6A6F6274
RUNNING, ACCEPTED = JobStatus.running.value, JobStatus.accepted.value
DIALECT = SQLDialect(
    param="%s",
    status="status",
    process_id="process_id",
    type="coalesce(doc->>'type', 'process')",
    created="created",
    started="doc->>'started'",
    duration="extract(epoch FROM coalesce((doc->>'finished')::timestamptz, now()) "
    "- (doc->>'started')::timestamptz)",
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    identifier text PRIMARY KEY,
    doc jsonb NOT NULL,
    status text GENERATED ALWAYS AS (doc->>'status') STORED,
    created text GENERATED ALWAYS AS (doc->>'created') STORED,
    process_id text GENERATED ALWAYS AS (doc->>'process_id') STORED,
    owner text,
    heartbeat timestamptz
);
CREATE INDEX IF NOT EXISTS {TABLE}_status ON {TABLE} (status, created);
CREATE INDEX IF NOT EXISTS {TABLE}_created ON {TABLE} (created DESC, identifier);
-- added after the first release: tables made before get the column here (the check first, so
-- that no exclusive lock is taken while other workers use the table)
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_name = '{TABLE}' AND column_name = 'process_id') THEN
        ALTER TABLE {TABLE} ADD COLUMN process_id text
            GENERATED ALWAYS AS (doc->>'process_id') STORED;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS {TABLE}_process ON {TABLE} (process_id, created);
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

    def __init__(self, url: str, pool_size: int = 8, timeout_s: float = 5.0) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self.timeout_s = timeout_s
        self._schema_ready = False
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, int(timeout_s)),
                "options": "-c statement_timeout=15000",
                "application_name": "app-package",
            },
            check=ConnectionPool.check_connection,  # a server restart breaks pooled ones
            timeout=timeout_s,
            reconnect_timeout=timeout_s,  # then the next request tries again: no long backoff
            name="app-package-jobs",
            open=True,
        )

    def _run(self, op: Any) -> Any:
        """`op(conn)` in one short transaction on a pooled connection."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection() as conn:
                if not self._schema_ready:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                        conn.execute(SCHEMA)
                    self._schema_ready = True
                return op(conn)
        except (psycopg.OperationalError, PoolTimeout) as e:
            raise JobStoreUnavailable(
                f"job store {redact(self.url)} unavailable: {first_line(e)}; "
                "check that PostgreSQL is running (APP_PACKAGE_JOB_STORE)"
            ) from e

    def close(self) -> None:
        self._pool.close()

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

    def add_many(self, jobs: list[dict[str, Any]]) -> None:
        from psycopg.types.json import Jsonb

        def op(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {TABLE} (identifier, doc) VALUES (%s, %s)",
                    [(job["identifier"], Jsonb(job)) for job in jobs],
                )

        self._run(op)

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self._run(
            lambda c: c.execute(
                f"SELECT doc FROM {TABLE} WHERE identifier = %s", (job_id,)
            ).fetchone()
        )
        return None if row is None else dict(row[0])

    def page(self, query: JobQuery) -> tuple[list[dict[str, Any]], int]:
        where, args = DIALECT.where(query)

        def op(conn: psycopg.Connection[Any]) -> tuple[list[dict[str, Any]], int]:
            count = conn.execute(f"SELECT count(*) FROM {TABLE} {where}", args).fetchone()
            rows = conn.execute(
                f"SELECT doc - 'spec' FROM {TABLE} {where} "
                "ORDER BY created DESC, identifier LIMIT %s OFFSET %s",
                (*args, query.limit, query.offset),
            ).fetchall()
            return [dict(r[0]) for r in rows], int(count[0] if count else 0)

        jobs, matched = self._run(op)
        return jobs, matched

    def update(
        self,
        job_id: str,
        fields: dict[str, Any],
        statuses: set[str] | None = None,
        owner: str | None = None,
    ) -> bool:
        from psycopg.types.json import Jsonb

        sql = f"UPDATE {TABLE} SET doc = doc || %s WHERE identifier = %s"
        args: tuple[Any, ...] = (Jsonb(fields), job_id)
        if statuses is not None:
            sql += " AND status = ANY(%s)"
            args = (*args, sorted(statuses))
        if owner is not None:
            sql += " AND coalesce(doc->>'owner', '') = %s"
            args = (*args, owner)
        return bool(self._run(lambda c: c.execute(sql, args).rowcount))

    def claim(self, owner: str, max_running: int, fields: dict[str, Any]) -> list[dict[str, Any]]:
        from psycopg.types.json import Jsonb

        def op(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
            with conn.transaction():
                # one claimer at a time over all workers: the count below stays true until commit
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))
                row = conn.execute(
                    f"SELECT count(*) FROM {TABLE} WHERE status = %s", (RUNNING,)
                ).fetchone()
                free = max_running - int(row[0] if row else 0)
                if free <= 0:
                    return []
                ids = conn.execute(
                    f"SELECT identifier FROM {TABLE} WHERE status = %s "
                    "ORDER BY created LIMIT %s FOR UPDATE SKIP LOCKED",
                    (ACCEPTED, free),
                ).fetchall()
                if not ids:
                    return []
                merged = {**fields, "status": RUNNING, "owner": owner}
                rows = conn.execute(
                    f"UPDATE {TABLE} SET doc = doc || %s, owner = %s, heartbeat = now() "
                    "WHERE identifier = ANY(%s) RETURNING doc",
                    (Jsonb(merged), owner, [r[0] for r in ids]),
                ).fetchall()
            return sorted((dict(r[0]) for r in rows), key=lambda j: str(j["created"]))

        return list(self._run(op))

    def heartbeat(self, owner: str) -> None:
        self._run(
            lambda c: c.execute(
                f"UPDATE {TABLE} SET heartbeat = now() WHERE owner = %s AND status = %s",
                (owner, RUNNING),
            )
        )

    def running(self) -> list[tuple[dict[str, Any], float]]:
        rows = self._run(
            lambda c: c.execute(
                f"SELECT doc - 'spec', extract(epoch FROM now() - heartbeat) FROM {TABLE} "
                "WHERE status = %s",
                (RUNNING,),
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
