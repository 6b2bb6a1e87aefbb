"""The job stores and the rules on job records: the SQLite store shared by processes on one host,
PostgreSQL shared by workers anywhere, the job-list queries of both, claims that keep the limit,
orphans judged by pid or heartbeat, and the CWL engine's job order and step progress."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from app_package.jobs.identity import Owner, orphan_reason
from app_package.jobs.store.postgresql import PostgresStore
from tests.support.pgserve import PostgresServer


def _claim_in_process(path: str, owner: str, out: Any) -> None:
    from app_package.jobs.store.sqlite import SQLiteStore

    store = SQLiteStore(Path(path))
    out.put([j["identifier"] for j in store.claim(owner, 5, {})])
    store.close()


def test_sqlite_store_is_shared_by_processes_and_keeps_its_contract(tmp_path: Path) -> None:
    """The single-host store: claims from several processes at once never exceed the limit or
    take a job twice; one job per idempotency key under racing threads; conditional updates;
    text round-trips; the records stay plain JSON that the sqlite3 shell reads."""
    import json
    import multiprocessing
    import sqlite3

    from app_package.jobs.store.sqlite import SQLiteStore

    path = tmp_path / "jobs.db"
    store = SQLiteStore(path)
    for i in range(30):
        store.add_unique({"identifier": f"j{i:02d}", "process_id": "p", "status": "accepted",
                          "created": f"2026-01-01T00:00:{i:02d}Z"}, None)  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_in_process, args=(str(path), f"w{k}", out))
             for k in range(3)]  # fmt: skip
    for proc in procs:
        proc.start()
    claimed = [j for _ in procs for j in out.get(timeout=60)]
    for proc in procs:
        proc.join(30)
    assert len(claimed) == 5 == len(set(claimed))  # never over the limit, none twice
    assert sorted(claimed) == [f"j{i:02d}" for i in range(5)]  # oldest first
    with ThreadPoolExecutor(4) as pool:
        same = list(pool.map(
            lambda k: store.add_unique(
                {"identifier": f"k{k}", "process_id": "p", "status": "accepted",
                 "created": "2026-01-02T00:00:00Z", "idempotency_key": "key-1"}, "key-1"),
            range(8),
        ))  # fmt: skip
    assert len({j["identifier"] for j in same}) == 1
    other = {"identifier": "k-other", "process_id": "q", "status": "accepted",
             "created": "2026-01-02T00:00:00Z", "idempotency_key": "key-1"}  # fmt: skip
    assert store.add_unique(other, "key-1")["identifier"] == "k-other"  # same key, other process
    assert not store.update("j29", {"progress": 5}, {"running"})
    assert store.update("j29", {"progress": 5, "message": "Zürich – queued"}, {"accepted"})
    assert store.get("j29") == {"identifier": "j29", "process_id": "p", "status": "accepted",
                                "created": "2026-01-01T00:00:29Z", "progress": 5,
                                "message": "Zürich – queued"}  # fmt: skip
    with sqlite3.connect(path) as conn:
        doc = conn.execute("SELECT doc FROM jobs WHERE identifier = 'j29'").fetchone()[0]
    assert json.loads(doc)["message"] == "Zürich – queued"
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_job_list_queries_filter_in_both_stores(
    backend: str, tmp_path: Path, pg: PostgresServer
) -> None:
    """Every job-list filter, newest first, with limit and offset, the same in both stores."""
    from app_package.jobs.store import JobQuery, open_store

    store = open_store(
        str(tmp_path / "jobs.db") if backend == "sqlite" else pg.create_database("query")
    )
    try:
        for i in range(12):
            status = ("accepted", "running", "successful", "failed")[i % 4]
            started = f"2026-01-01T00:{i:02d}:00Z" if status != "accepted" else None
            finished = f"2026-01-01T00:{i:02d}:{i * 4:02d}Z" if i % 4 >= 2 else None
            store.add_unique({"identifier": f"j{i:02d}", "type": "process",
                              "process_id": "a" if i < 6 else "b", "status": status,
                              "created": f"2026-01-01T00:{i:02d}:00Z", "started": started,
                              "finished": finished, "spec": {"x": 1}}, None)  # fmt: skip

        def ids(**kw: Any) -> tuple[list[str], int]:
            jobs, matched = store.page(JobQuery(**kw))
            assert all("spec" not in j for j in jobs)
            return [j["identifier"] for j in jobs], matched

        assert ids() == ([f"j{i:02d}" for i in range(11, -1, -1)], 12)
        assert ids(statuses=frozenset({"failed"})) == (["j11", "j07", "j03"], 3)
        assert ids(process_ids=frozenset({"a"}), statuses=frozenset({"successful"})) == (
            ["j02"], 1)  # fmt: skip
        assert ids(types=frozenset({"other"})) == ([], 0)
        assert ids(created_from="2026-01-01T00:09:00Z") == (["j11", "j10", "j09"], 3)
        assert ids(created_to="2026-01-01T00:01:00Z") == (["j01", "j00"], 2)
        # finished jobs: duration 4·i s (j02 8 s, j03 12 s, j06 24 s, …); running: still going
        assert ids(max_duration_s=20, statuses=frozenset({"successful", "failed"})) == (
            ["j03", "j02"], 2)  # fmt: skip
        assert ids(min_duration_s=25, statuses=frozenset({"successful", "failed"}))[0] == [
            "j11", "j10", "j07"]  # fmt: skip
        assert ids(limit=5, offset=10) == (["j01", "j00"], 12)
    finally:
        store.close()


def test_sqlite_job_list_uses_its_indexes(tmp_path: Path) -> None:
    """At 100,000 jobs a filtered list is an index lookup, not a scan of the table."""
    import sqlite3

    from app_package.jobs.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "jobs.db")
    store.get("none")  # creates the schema
    with sqlite3.connect(tmp_path / "jobs.db") as conn:
        for sql in (
            "SELECT doc FROM jobs WHERE status IN ('running') ORDER BY created DESC",
            "SELECT doc FROM jobs WHERE process_id IN ('p') ORDER BY created DESC",
            "SELECT doc FROM jobs ORDER BY created DESC, identifier LIMIT 10",
        ):
            plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
            assert "USING INDEX" in plan and "SCAN jobs" not in plan.replace(
                "SCAN jobs USING INDEX", ""), (sql, plan)  # fmt: skip
    store.close()


def test_claims_are_atomic_over_workers_and_keep_the_limit(pg: PostgresServer) -> None:
    url = pg.create_database("claims")
    stores = [PostgresStore(url) for _ in range(3)]  # three workers' pools
    try:
        for i in range(30):
            job = {"identifier": f"j{i:02d}", "process_id": "p", "status": "accepted",
                   "created": f"2026-01-01T00:00:{i:02d}Z"}  # fmt: skip
            stores[0].add_unique(job, None)
        with ThreadPoolExecutor(9) as pool:
            got = list(pool.map(lambda k: stores[k % 3].claim(f"w{k}", 5, {}), range(27)))
        claimed = [j["identifier"] for batch in got for j in batch]
        assert len(claimed) == 5 == len(set(claimed))  # never over the limit, none twice
        assert sorted(claimed) == [f"j{i:02d}" for i in range(5)]  # oldest first
        # one key, one job: also when two workers race
        with ThreadPoolExecutor(4) as pool:
            same = list(pool.map(
                lambda k: stores[k % 3].add_unique(
                    {"identifier": f"k{k}", "process_id": "p", "status": "accepted",
                     "created": "x", "idempotency_key": "key-1"}, "key-1"),
                range(8),
            ))  # fmt: skip
        assert len({j["identifier"] for j in same}) == 1
    finally:
        for s in stores:
            s.close()


def test_orphans_are_judged_by_pid_here_and_by_heartbeat_elsewhere() -> None:
    me = Owner.me()
    dead_here = Owner(me.host, me.boot, 999_999_999, "1")
    other_host = Owner("elsewhere", "b", os.getpid(), me.start)
    rebooted = Owner(me.host, "old-boot", me.pid, me.start)

    def job(owner: object) -> dict[str, Any]:
        return {"identifier": "j", "status": "running", "owner": str(owner) if owner else None}

    assert orphan_reason(job(me), 999, me, 30) is None  # ours: reaped by our own supervisor
    assert orphan_reason(job(Owner(me.host, me.boot, me.pid, me.start)), 0, me, 30) is None
    assert "pid 999999999" in str(orphan_reason(job(dead_here), 0, me, 30))
    assert orphan_reason(job(other_host), 5, me, 30) is None  # alive: recent heartbeat
    assert "no heartbeat" in str(orphan_reason(job(other_host), 31, me, 30))
    assert "rebooted" in str(orphan_reason(job(rebooted), 0, me, 30))
    assert "no server worker" in str(orphan_reason(job(None), 0, me, 30))
