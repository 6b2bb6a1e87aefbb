"""Live-server tests: `app-package serve` started on a free loopback port, exercised over HTTP.

They express the Core, Process Description and Job List checks of the OGC conformance suite
(ets-ogcapi-processes10, which cannot run here) plus the service behaviour of jobs: progress,
dismiss, restart, failures, queueing, href security. The `sleep` process comes from
tests/server-config.yml; the real processes are exercised in the happy-path test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from app_package import __version__
from app_package.jobs.child import JOB_NICENESS
from app_package.service.ogc import (
    INVALID_INPUT,
    INVALID_PARAMETER,
    JOB_FAILED,
    NO_SUCH_JOB,
    NO_SUCH_PROCESS,
    RESULT_NOT_READY,
)
from tests.conftest import REPO
from tests.support.server import (
    Server,
    assert_valid,
    job_processes,
)

REAL_PROCESSES = ("eurosat-training", "tile-classification")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # callbacks may reach "localhost" (the test's hook); 127.0.0.1 etc. stay refused
    srv = Server(
        tmp_path_factory.mktemp("server") / "var",
        extra_env={"APP_PACKAGE_ALLOWED_HOSTS": "localhost"},
    ).start()
    yield srv
    srv.stop()


# ==================================================================== Core / description
def test_conformance_claims_only_what_is_tested(server: Server) -> None:
    r = server.get("/conformance")
    assert r.status_code == 200
    claims = set(r.json()["conformsTo"])
    base = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
    assert claims == {
        base + c
        for c in ("core", "ogc-process-description", "json", "job-list", "dismiss", "callback",
                  "oas30")
    }  # fmt: skip
    assert_valid(r.json(), "confClasses.yaml")


def test_landing_page_links_and_openapi(server: Server) -> None:
    landing = server.get("/", params={"f": "json"}).json()
    rels = {link["rel"] for link in landing["links"]}
    assert "http://www.opengis.net/def/rel/ogc/1.0/conformance" in rels or "conformance" in rels
    assert "service-desc" in rels
    oas = server.get("/openapi", params={"f": "json"})
    assert oas.status_code == 200
    doc = oas.json()
    assert doc["openapi"].startswith("3.0")
    for path in ("/processes", "/processes/eurosat-training/execution", "/jobs", "/jobs/{jobId}",
                 "/jobs/{jobId}/results"):  # fmt: skip
        assert path in doc["paths"], path
    example = doc["paths"]["/processes/eurosat-training/execution"]["post"]["requestBody"]
    assert example["content"]["application/json"]["example"]["inputs"]


def test_process_list_and_descriptions_are_complete(server: Server) -> None:
    listing = server.get("/processes", params={"f": "json"}).json()
    ids = {p["id"] for p in listing["processes"]}
    assert set(REAL_PROCESSES) <= ids
    assert_valid(listing, "processList.yaml")
    for pid in REAL_PROCESSES:
        r = server.get(f"/processes/{pid}", params={"f": "json"})
        assert r.status_code == 200
        desc = r.json()
        assert_valid(desc, "process.yaml")
        assert desc["version"] == __version__
        assert desc["inputs"] and desc["outputs"]
        for name, spec in {**desc["inputs"], **desc["outputs"]}.items():
            assert spec.get("title") and spec.get("description"), name
            assert isinstance(spec.get("schema"), dict), name
            Draft202012Validator.check_schema(spec["schema"])
        for name, spec in desc["inputs"].items():
            assert "minOccurs" in spec and "maxOccurs" in spec, name
        assert any(link["rel"].endswith("/execute") for link in desc["links"])
        # the example request is itself valid against the description
        from app_package.service.execute import validate_execute
        from app_package.service.hrefs import HrefPolicy

        validate_execute(desc, desc["example"], HrefPolicy())
    training = server.get("/processes/eurosat-training", params={"f": "json"}).json()
    assert training["jobControlOptions"] == ["async-execute"]


def test_process_enums_match_the_library() -> None:
    """The description's choices are the library's (no accepted-but-ignored values)."""
    from app_package.model.spec import ARCHITECTURES
    from app_package.training import config as training
    from processes.training import PROCESS_METADATA as T

    assert T["inputs"]["optimizer"]["schema"]["enum"] == list(training.OPTIMIZERS)
    assert T["inputs"]["lr_schedule"]["schema"]["enum"] == list(training.LR_SCHEDULES)
    assert T["inputs"]["arch"]["schema"]["enum"] == list(ARCHITECTURES)
    fields = set(training.TrainConfig.__dataclass_fields__)
    assert set(T["inputs"]) <= fields
    from app_package.model.source import RUNTIMES
    from processes.classification import PROCESS_METADATA as C

    assert C["inputs"]["runtime"]["schema"]["enum"] == list(RUNTIMES)


# ==================================================================== exceptions
def test_unknown_process_and_job_use_ogc_types(server: Server) -> None:
    r = server.get("/processes/no-such-thing")
    assert r.status_code == 404 and r.json()["type"] == NO_SUCH_PROCESS
    r = server.execute("no-such-thing", {})
    assert r.status_code == 404 and r.json()["type"] == NO_SUCH_PROCESS
    for path in ("/jobs/0000", "/jobs/0000/results"):
        r = server.get(path)
        assert r.status_code == 404 and r.json()["type"] == NO_SUCH_JOB, path
        assert_valid(r.json(), "exception.yaml")
    r = requests.delete(server.url + "/jobs/0000", timeout=10)
    assert r.status_code == 404 and r.json()["type"] == NO_SUCH_JOB


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [
        ({}, "missing required input 'steps'"),
        ({"steps": "three"}, "input 'steps'"),
        ({"steps": 0}, "input 'steps'"),
        ({"steps": 1, "colour": "red"}, "unknown input(s) 'colour'"),
        ({"steps": 1, "tags": ["a", "b", "c", "d"]}, "input 'tags' takes at most 3"),
        ({"steps": 1, "data": "/etc/passwd"}, "outside the allowed data folders"),
        ({"steps": 1, "data": "file:///etc/passwd"}, "outside the allowed data folders"),
        ({"steps": 1, "data": {"href": "file:///etc/passwd"}}, "outside the allowed data folders"),
        ({"steps": 1, "data": "gopher://example.com/x"}, "scheme 'gopher:' is not allowed"),
        ({"steps": 1, "data": {"href": "http://127.0.0.1:1/x"}}, "non-public address"),
        ({"steps": 1, "data": "http://169.254.169.254/latest/meta-data"}, "non-public address"),
        ({"steps": 1, "data": "http://[::1]/x"}, "non-public address"),
        ({"steps": {"href": "http://example.com/3"}}, "does not accept references"),
    ],
)
def test_bad_inputs_answer_400_naming_the_input(server: Server, inputs: Any, needle: str) -> None:
    before = server.get("/jobs").json()["numberMatched"]
    r = server.execute("sleep", inputs)
    assert r.status_code == 400, r.text
    assert needle in r.json()["detail"], r.json()
    doc = r.json()
    assert doc["type"] == INVALID_INPUT and doc["title"] == "Invalid input" and doc["status"] == 400
    assert server.get("/jobs").json()["numberMatched"] == before  # no job was created


def test_path_traversal_out_of_the_data_roots_is_refused(server: Server) -> None:
    sample = REPO / "app_package" / "sample"
    r = server.execute("sleep", {"steps": 1, "data": f"{sample}/../../../../etc/passwd"})
    assert r.status_code == 400 and "outside the allowed data folders" in r.json()["detail"]
    r = server.execute("sleep", {"steps": 1, "data": f"{sample}/s2-l1c/item.json"})
    assert r.status_code == 201, r.text


def test_subscriber_urls_are_guarded(server: Server) -> None:
    r = server.execute("sleep", {"steps": 1}, subscriber={"successUri": "http://10.0.0.1/hook"})
    assert r.status_code == 400 and "successUri" in r.json()["detail"]
    r = server.execute("sleep", {"steps": 1}, subscriber={"successUri": "file:///etc/passwd"})
    assert r.status_code == 400


def test_malformed_and_oversized_bodies(server: Server) -> None:
    url = f"{server.url}/processes/sleep/execution"
    r = requests.post(url, data=b"{not json", timeout=10)
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = requests.post(url, json=["a list"], timeout=10)
    assert r.status_code == 400
    big = {"inputs": {"steps": 1, "fail": "x" * 2_000_000}}
    r = requests.post(url, json=big, timeout=10)
    assert r.status_code == 413


def test_inline_qualified_and_href_values_are_accepted(server: Server) -> None:
    sample = REPO / "app_package" / "sample" / "s2-l1c" / "item.json"
    inputs = {"steps": {"value": 1}, "seconds": 0, "data": {"href": sample.as_uri()},
              "tags": ["x", {"value": "y"}]}  # fmt: skip
    job = server.submit("sleep", inputs)
    assert server.wait(job, ("successful", "failed"))["status"] == "successful"


# ==================================================================== execution and jobs
def test_async_execute_progress_and_browsable_results(server: Server) -> None:
    r = server.execute("sleep", {"steps": 6, "seconds": 0.4})
    assert r.status_code == 201, r.text
    assert r.headers["Preference-Applied"] == "respond-async"
    info = r.json()
    assert_valid(info, "statusInfo.yaml")
    assert r.headers["Location"] == f"{server.url}/jobs/{info['jobID']}"
    assert info["status"] in ("accepted", "running") and info["type"] == "process"
    assert "finished" not in info  # unset timestamps are omitted, not null
    job = info["jobID"]
    r = server.get(f"/jobs/{job}/results")
    assert r.status_code == 404 and r.json()["type"] == RESULT_NOT_READY
    seen = {server.wait(job, ("running",))["status"]}
    progress = []
    while (s := server.status(job))["status"] == "running":
        progress.append((s["progress"], s["message"]))
        time.sleep(0.1)
    seen.add(s["status"])
    assert s["status"] == "successful", s["message"]
    assert_valid(s, "statusInfo.yaml")
    assert any(0 < p < 100 and m.startswith("step ") for p, m in progress), progress
    assert [p for p, _ in progress] == sorted(p for p, _ in progress)
    assert s["progress"] == 100
    assert s["created"] <= s["started"] <= s["finished"] and s["updated"] >= s["started"]
    assert any(link["rel"].endswith("/results") for link in s["links"])
    # results: the output STAC catalog with hrefs resolving on this server
    catalog = server.get(f"/jobs/{job}/results").json()
    assert catalog["type"] == "Catalog"
    item_href = next(lk["href"] for lk in catalog["links"] if lk["rel"] == "item")
    assert item_href.startswith(server.url + "/outputs/")
    item = requests.get(item_href, timeout=10).json()
    asset = requests.get(requests.compat.urljoin(item_href, item["assets"]["data"]["href"]))
    assert asset.status_code == 200 and asset.text == "hello\n"
    # the outputs folder is also browsable as STAC through pygeoapi
    stac = server.get("/stac/outputs", params={"f": "json"})
    assert stac.status_code == 200
    assert any(job in link["href"] for link in stac.json()["links"])


def test_results_answer_as_the_execute_request_asked(server: Server) -> None:
    """18-062r2 §7.11, sync and async alike: raw (the default) is the catalog itself; document
    is a results document (the catalog as a qualified value, or a link when the request asked
    for transmissionMode reference); raw + reference is 204 with a Link header."""
    r = server.execute("sleep", {"steps": 1}, prefer=None)
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "Catalog"
    assert "Preference-Applied" not in r.headers
    r = server.execute("sleep", {"steps": 1}, prefer="wait=10", response="document")
    assert r.status_code == 200 and r.headers["Preference-Applied"] == "wait=10"
    doc = r.json()
    assert_valid(doc, "results.yaml")
    assert set(doc) == {"catalog"} and doc["catalog"]["mediaType"] == "application/json"
    assert doc["catalog"]["value"]["type"] == "Catalog"
    ref = {"catalog": {"transmissionMode": "reference"}}
    r = server.execute("sleep", {"steps": 1}, prefer=None, response="document", outputs=ref)
    link = r.json()["catalog"]
    assert_valid(r.json(), "results.yaml")
    assert requests.get(link["href"], timeout=10).json()["type"] == "Catalog"
    r = server.execute("sleep", {"steps": 1}, prefer=None, outputs=ref)
    assert r.status_code == 204 and r.content == b""
    assert r.headers["Link"].startswith("<http") and 'rel="catalog"' in r.headers["Link"]
    bad = server.execute("sleep", {"steps": 1}, outputs={"nope": {}})
    assert bad.status_code == 400 and "unknown output 'nope'" in bad.json()["detail"]
    # async: /results answers as the execute request asked
    for response, check in (
        ("raw", lambda d: d["type"] == "Catalog"),
        ("document", lambda d: d["catalog"]["value"]["type"] == "Catalog"),
    ):
        job = server.submit_with("sleep", {"steps": 1}, response=response)
        server.wait(job, ("successful",))
        got = server.get(f"/jobs/{job}/results")
        assert got.status_code == 200 and check(got.json()), got.text
    # a failed job's results are its exception
    job = server.submit_with("sleep", {"steps": 1, "fail": "on purpose"})
    server.wait(job, ("failed",))
    failed = server.get(f"/jobs/{job}/results")
    assert failed.status_code == 400 and failed.json()["type"] == JOB_FAILED
    assert failed.json()["detail"] == "on purpose"
    assert_valid(failed.json(), "exception.yaml")


def test_health_in_the_api_health_check_format(server: Server, tmp_path: Path) -> None:
    """GET /health: application/health+json as EOAP's eoap-api-health-check models it; pass
    on a healthy server, warn (still 200) when the output folder is short of space."""
    from eoap_api_health_check import HealthyResponse, HealthyStatus, WarnResponse

    r = server.get("/health")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/health+json")
    doc = HealthyResponse.model_validate(r.json())
    assert doc.status.value == "pass" and doc.checks is not None
    assert set(doc.checks) == {"jobStore:responseTime", "mlflow:responseTime",
                               "outputs:freeSpace", "jobs:freeSlots"}  # fmt: skip
    assert all(c[0].status == HealthyStatus.PASS for c in doc.checks.values())
    assert doc.checks["jobs:freeSlots"][0].observed_value == server.max_jobs
    low = Server(tmp_path / "var", extra_env={"APP_PACKAGE_MIN_FREE_DISK": str(1 << 60)}).start()
    try:
        r = low.get("/health")
        assert r.status_code == 200
        warn = WarnResponse.model_validate(r.json())
        assert warn.status == "warn" and "MiB free for job outputs" in (warn.output or "")
        assert warn.checks is not None and warn.checks["outputs:freeSpace"][0].status == "warn"
    finally:
        low.stop()


def test_a_synchronous_wait_is_bounded(tmp_path: Path) -> None:
    """`Prefer: wait=N` is honoured up to the server's bound; a job still running then is
    answered as async (201 + Location + statusInfo) and goes on."""
    srv = Server(tmp_path / "var", extra_env={"APP_PACKAGE_SYNC_WAIT": "1"}).start()
    try:
        r = srv.execute("sleep", {"steps": 10, "seconds": 0.5}, prefer="wait=30")
        assert r.status_code == 201, r.text
        assert r.headers["Location"].endswith(r.json()["jobID"])
        assert "Preference-Applied" not in r.headers  # 30 s was not what it got
        assert srv.wait(r.json()["jobID"], ("successful",), timeout=60)["status"] == "successful"
        quick = srv.execute("sleep", {"steps": 1, "seconds": 0.01}, prefer=None)
        assert quick.status_code == 200
        bad = srv.execute("sleep", {"steps": 1}, prefer="wait=soon")
        assert bad.status_code == 400 and "wait" in bad.json()["detail"]
    finally:
        srv.stop()


def test_async_only_process_is_async_even_without_prefer(server: Server) -> None:
    r = server.execute("eurosat-training", {"epochs": 1, "stac": "/etc/x"}, prefer=None)
    assert r.status_code == 400  # validated first
    r = server.execute("eurosat-training", {"epochs": 0}, prefer=None)
    assert r.status_code == 400 and "input 'epochs'" in r.json()["detail"]


def test_failure_carries_the_library_message(server: Server) -> None:
    message = "band B99 missing from item X: assets present are B01, B02"
    job = server.submit("sleep", {"steps": 2, "fail": message})
    s = server.wait(job, ("successful", "failed"))
    assert s["status"] == "failed" and s["message"] == message
    assert "finished" in s
    r = server.get(f"/jobs/{job}/results")
    assert r.status_code == 400 and r.json()["detail"] == message
    assert not list((server.data_dir / "outputs").glob(f"*{job}*"))  # nothing half-written
    r = server.execute("sleep", {"steps": 1, "fail": message}, prefer=None)
    assert r.status_code == 400 and r.json()["detail"] == message


def test_dismiss_stops_the_running_work(server: Server) -> None:
    job = server.submit("sleep", {"steps": 300, "seconds": 0.2})
    server.wait(job, ("running",))
    deadline = time.monotonic() + 30
    while server.status(job)["progress"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)  # the child is really working
    assert job_processes(job)
    # the job yields the CPU to the web worker: it runs at the configured niceness
    assert server.proc is not None
    server_nice = os.getpriority(os.PRIO_PROCESS, server.proc.pid)
    for pid in job_processes(job):
        assert os.getpriority(os.PRIO_PROCESS, pid) == server_nice + JOB_NICENESS
    t0 = time.monotonic()
    r = requests.delete(f"{server.url}/jobs/{job}", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "dismissed"
    while job_processes(job) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert not job_processes(job), "the job's process still runs 5 s after DELETE"
    assert server.status(job)["status"] == "dismissed"
    assert not list((server.data_dir / "outputs").glob(f"*{job}*"))  # partial outputs removed
    time.sleep(0.5)
    assert server.status(job)["status"] == "dismissed"  # the killed child did not overwrite it
    r = server.get(f"/jobs/{job}/results")
    assert r.status_code == 404


def test_dismiss_a_queued_job(server: Server) -> None:
    blockers = [server.submit("sleep", {"steps": 50, "seconds": 0.2}) for _ in range(2)]
    queued = server.submit("sleep", {"steps": 1})
    time.sleep(0.5)
    assert server.status(queued)["status"] == "accepted"
    assert (
        requests.delete(f"{server.url}/jobs/{queued}", timeout=10).json()["status"] == "dismissed"
    )
    for job in blockers:
        requests.delete(f"{server.url}/jobs/{job}", timeout=10)
    time.sleep(1)
    assert server.status(queued)["status"] == "dismissed"


def test_job_list_links_and_paging(server: Server) -> None:
    for _ in range(3):
        server.submit("sleep", {"steps": 1})
    doc = server.get("/jobs").json()
    assert_valid(doc, "jobList.yaml")
    assert any(link["rel"] == "self" for link in doc["links"])
    assert all(any(lk["rel"] == "self" for lk in j["links"]) for j in doc["jobs"])
    page = server.get("/jobs", params={"limit": 2}).json()
    assert len(page["jobs"]) == 2
    nxt = next(lk["href"] for lk in page["links"] if lk["rel"] == "next")
    page2 = requests.get(nxt, timeout=10).json()
    assert {j["jobID"] for j in page2["jobs"]}.isdisjoint({j["jobID"] for j in page["jobs"]})
    assert server.get("/jobs", params={"limit": "x"}).status_code == 400


def test_job_list_filters(tmp_path: Path) -> None:
    """Every filter of the job-list class, each kept in the paging links; bad values are 400s
    that name the parameter."""
    srv = Server(tmp_path / "var").start()
    try:
        ok = [srv.submit("sleep", {"steps": 1}) for _ in range(3)]
        failed = srv.submit("sleep", {"steps": 1, "fail": "no"})
        slow = srv.submit("sleep", {"steps": 2, "seconds": 1.2})
        for job in ok:
            srv.wait(job, ("successful",))
        srv.wait(failed, ("failed",))
        srv.wait(slow, ("successful",), timeout=60)
        mid = srv.status(ok[1])["created"]

        def ids(**params: Any) -> list[str]:
            doc = srv.get("/jobs", params=params).json()
            assert_valid(doc, "jobList.yaml")
            assert doc["numberMatched"] >= len(doc["jobs"])
            return [j["jobID"] for j in doc["jobs"]]

        assert ids(status="failed") == [failed]
        assert set(ids(status="successful,failed")) == {*ok, failed, slow}
        assert set(ids(status=["successful", "failed"])) == {*ok, failed, slow}  # repeated
        assert set(ids(processID="sleep")) == {*ok, failed, slow}
        assert ids(processID="eurosat-training") == []
        assert set(ids(type="process")) == {*ok, failed, slow}
        assert ids(minDuration=2) == [slow]
        assert slow not in ids(maxDuration=1)
        created = {j: srv.status(j)["created"] for j in [*ok, failed, slow]}
        assert set(ids(datetime=f"{mid}/..")) == {j for j, c in created.items() if c >= mid}
        assert set(ids(datetime=f"../{mid}")) == {j for j, c in created.items() if c <= mid}
        assert ids(datetime=mid) == [ok[1]]
        page = srv.get("/jobs", params={"status": "successful", "limit": 2}).json()
        nxt = next(lk["href"] for lk in page["links"] if lk["rel"] == "next")
        assert "status=successful" in nxt
        rest = requests.get(nxt, timeout=10).json()
        assert {j["status"] for j in rest["jobs"]} == {"successful"} and len(rest["jobs"]) == 2
        prev = next(lk["href"] for lk in rest["links"] if lk["rel"] == "prev")
        assert [j["jobID"] for j in requests.get(prev, timeout=10).json()["jobs"]] == [
            j["jobID"] for j in page["jobs"]]  # fmt: skip
        for params, name in (({"status": "done"}, "status"), ({"limit": "-1"}, "limit"),
                             ({"limit": "0"}, "limit"), ({"datetime": "yesterday"}, "datetime"),
                             ({"datetime": "2026-02-01T00:00:00Z/2026-01-01T00:00:00Z"},
                              "datetime"), ({"minDuration": "x"}, "minDuration"),
                             ({"type": "batch"}, "type")):  # fmt: skip
            r = srv.get("/jobs", params=params)
            assert r.status_code == 400, (params, r.text)
            assert f"query parameter '{name}'" in r.json()["detail"]
            assert r.json()["type"] == INVALID_PARAMETER
    finally:
        srv.stop()


def test_concurrency_limit_queues_and_loses_nothing(server: Server) -> None:
    jobs = [server.submit("sleep", {"steps": 3, "seconds": 0.2}) for _ in range(6)]
    most = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = [server.status(j)["status"] for j in jobs]
        all_running = [
            j for j in server.get("/jobs", params={"limit": 1000}).json()["jobs"]
            if j["status"] == "running"
        ]  # fmt: skip
        most = max(most, len(all_running))
        if all(s in ("successful", "failed", "dismissed") for s in states):
            break
        time.sleep(0.1)
    assert states == ["successful"] * 6
    assert 1 <= most <= server.max_jobs


# ==================================================================== restart
def test_restart_mid_job_fails_orphans_and_resumes_the_queue(tmp_path: Path) -> None:
    # requeue 0: an interrupted job fails (re-queueing: tests/jobs/test_resume.py)
    srv = Server(tmp_path / "var", max_jobs=1, extra_env={"APP_PACKAGE_REQUEUE": "0"}).start()
    try:
        running = srv.submit("sleep", {"steps": 300, "seconds": 0.2})
        queued = srv.submit("sleep", {"steps": 1})
        srv.wait(running, ("running",))
        time.sleep(1.5)
        assert srv.status(queued)["status"] == "accepted"
        srv.stop(signal.SIGKILL)  # a crash: nothing is cleaned up by the server itself
        assert job_processes(running)  # its child outlived the server
        srv.start()
        s = srv.wait(running, ("failed",), timeout=10)
        assert "server restarted" in s["message"]
        assert not job_processes(running)
        assert srv.wait(queued, ("successful",), timeout=60)["status"] == "successful"
        assert {j["jobID"] for j in srv.get("/jobs").json()["jobs"]} == {running, queued}
    finally:
        srv.stop()


def test_jobs_outlive_their_fork_server(tmp_path: Path) -> None:
    """The fork server that starts job processes dies: running jobs go on, new ones start."""
    srv = Server(tmp_path / "var", max_jobs=2).start()
    try:
        job = srv.submit("sleep", {"steps": 15, "seconds": 0.2})
        srv.wait(job, ("running",))
        deadline = time.monotonic() + 10
        while not job_processes(job) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = min(job_processes(job))
        fork_server = int(Path(f"/proc/{child}/stat").read_text().rsplit(") ", 1)[1].split()[1])
        assert srv.proc is not None and fork_server != srv.proc.pid
        os.kill(fork_server, signal.SIGKILL)
        s = srv.wait(job, ("successful", "failed"), timeout=30)
        assert s["status"] == "successful", s["message"]
        again = srv.submit("sleep", {"steps": 1})
        assert srv.wait(again, ("successful", "failed"), timeout=30)["status"] == "successful"
    finally:
        srv.stop()


# ==================================================================== the real processes
@pytest.mark.slow
def test_train_then_classify_with_the_bundled_sample(server: Server) -> None:
    sample = REPO / "app_package" / "sample"
    if not (sample / "eurosat" / "catalog.json").is_file():
        pytest.skip("bundled sample not present")
    train = server.execute(
        "eurosat-training", {"epochs": 2, "samples_per_class": 3, "patience": 0, "batch_size": 16}
    )
    assert train.status_code == 201, train.text
    job = train.json()["jobID"]
    messages = set()
    while (s := server.status(job))["status"] in ("accepted", "running"):
        messages.add(s["message"])
        time.sleep(0.2)
    assert s["status"] == "successful", s["message"]
    catalog = server.get(f"/jobs/{job}/results").json()
    item_href = next(lk["href"] for lk in catalog["links"] if lk["rel"] == "item")
    item = requests.get(item_href, timeout=10).json()
    for asset in item["assets"].values():
        href = requests.compat.urljoin(item_href, asset["href"])
        assert requests.get(href, timeout=10).status_code == 200, href
    model_uri = item["properties"]["mlflow:model_uri"]
    assert model_uri.startswith("models:/")

    r = server.execute("tile-classification", {"model": model_uri})
    assert r.status_code == 201, r.text
    job2 = r.json()["jobID"]
    s = server.wait(job2, ("successful", "failed"), timeout=600)
    assert s["status"] == "successful", s["message"]
    result = server.get(f"/jobs/{job2}/results").json()
    assert result["type"] == "Catalog"
    hrefs = []
    for link in result["links"]:
        if link["rel"] in ("item", "child"):
            doc = requests.get(link["href"], timeout=10).json()
            for asset in doc.get("assets", {}).values():
                hrefs.append(requests.compat.urljoin(link["href"], asset["href"]))
    assert any(h.endswith(".tif") for h in hrefs), hrefs
    for href in hrefs:
        assert requests.head(href, timeout=10).status_code == 200, href
    print(json.dumps({"train_messages": sorted(messages)})[:500])


def test_callbacks_reach_the_subscriber(server: Server) -> None:
    """Subscriber URLs get the statusInfo on start and on success (host allowed by config)."""
    from tests.support.httpserve import Receiver

    receiver = Receiver()
    try:
        base = f"http://localhost:{receiver.port}"
        sub = {"successUri": base + "/ok", "inProgressUri": base + "/running",
               "failedUri": base + "/failed"}  # fmt: skip
        job = server.submit_with("sleep", {"steps": 1}, subscriber=sub)
        server.wait(job, ("successful",))
        paths = {p: doc for p, doc in receiver.wait(2, timeout=10)}
        assert paths["/running"]["jobID"] == job
        assert paths["/ok"]["status"] == "successful"
    finally:
        receiver.close()


# ==================================================================== OpenAPI fuzzing
@pytest.mark.slow
def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    """A bounded schemathesis run against the generated OpenAPI document: no 5xx anywhere.

    The real configuration; training execution is left out (each accepted request would train).
    """
    st = Path(sys.executable).with_name("schemathesis")
    if not st.exists():
        pytest.skip("schemathesis not installed (pip install -e '.[test]')")
    srv = Server(tmp_path / "var", max_jobs=1, config=REPO / "pygeoapi-config.yml").start()
    try:
        doc = srv.get("/openapi", params={"f": "json"}).json()
        assert not [r for r in json.dumps(doc).split('"$ref": ')[1:] if r.startswith('"http')]
        proc = subprocess.run(
            [str(st), "run", f"{srv.url}/openapi?f=json", "--checks", "not_a_server_error",
             "--max-examples", "5", "--phases", "examples,fuzzing,stateful",
             "--exclude-path-regex", "eurosat-training/execution",
             "--request-timeout", "120", "--seed", "1", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert "passed" in proc.stdout
    finally:
        srv.stop()
