# mypy: disable-error-code="union-attr, arg-type"
# (the generated client types every answer Optional and every union loosely: checked at run time)
"""The server as other people's OGC API – Processes clients use it: EOEPCA's generated client
(`ogc-api-processes-client`) and OWSLib's `ogcapi.processes` drive a live server through the
whole cycle, and every answer must parse in their models: landing page, conformance, process
list and descriptions, execute async and sync (raw and document), status, results, the job
list with each filter, dismiss, an unknown job and an unknown process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("clients") / "var").start()
    yield srv
    srv.stop()


def _eoepca(url: str) -> Any:
    from ogc_api_processes_client.api_client_wrapper import ApiClientWrapper
    from ogc_api_processes_client.configuration import Configuration

    return ApiClientWrapper(configuration=Configuration(host=url))


def _wait(client: Any, job_id: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get_status(job_id)
        if status.status.value in ("successful", "failed", "dismissed"):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def test_eoepca_client_drives_the_whole_cycle(server: Server) -> None:
    from ogc_api_processes_client.exceptions import NotFoundException
    from ogc_api_processes_client.models.exception import Exception as OGCException
    from ogc_api_processes_client.models.execute import Execute
    from ogc_api_processes_client.models.job_list import JobList
    from ogc_api_processes_client.models.status_info import StatusInfo

    client = _eoepca(server.url)
    landing = client.get_landing_page()
    assert {lk.rel for lk in landing.links} >= {"self", "service-desc", "conformance"}
    conformance = client.get_conformance_classes().conforms_to
    assert any(c.endswith("/conf/job-list") for c in conformance)
    processes = {p.id: p for p in client.get_processes().processes}
    assert {"sleep", "eurosat-training", "tile-classification", "water-bodies"} <= set(processes)
    for pid in processes:
        desc = client.get_process_description(pid)
        assert desc.id == pid and desc.inputs and desc.outputs
    # async, results document: the job's results parse as the client's results type. The
    # client's generated Execute model cannot hold an integer input (1 matches several of its
    # oneOf types), so integer inputs go through its execute_simple (a plain dict body)
    submitted = client.execute_simple(
        "sleep",
        {"inputs": {"steps": 1}, "response": "document"},
        _headers={"Prefer": "respond-async", "Content-Type": "application/json"},
    )
    assert isinstance(submitted, StatusInfo) and submitted.status.value == "accepted"
    done = _wait(client, submitted.job_id)
    assert done.status.value == "successful" and done.progress == 100
    results = client.get_result(submitted.job_id)
    catalog = results["catalog"].actual_instance  # a qualified value
    assert catalog.media_type == "application/json"
    # the generated oneOf keeps an object value in its second validator (its actual_instance
    # and to_dict() lose it: a client bug); by reference, below, it reads cleanly
    assert catalog.value.oneof_schema_2_validator["type"] == "Catalog"
    # by reference: the results document links the catalog
    ref = client.execute_simple(
        "sleep",
        {
            "inputs": {"steps": 1},
            "response": "document",
            "outputs": {"catalog": {"transmissionMode": "reference"}},
        },
        _headers={"Prefer": "respond-async", "Content-Type": "application/json"},
    )
    _wait(client, ref.job_id)
    link = client.get_result(ref.job_id)["catalog"].actual_instance
    assert requests.get(link.href, timeout=10).json()["type"] == "Catalog"
    # sync, raw (the default) and document, through the client's Execute model (water-bodies:
    # every input optional, its area the client's own Bbox type)
    box = {"bbox": [12.55, 52.46, 12.65, 52.5]}
    raw = client.execute(
        "water-bodies", Execute.from_dict({"inputs": {"aoi": box}}), _request_timeout=180
    )
    assert raw.actual_instance["type"] == "Catalog"
    # a sync results document: the client's execute() cannot deserialize one (its generated
    # oneOf matches the document as both `object` and a results map), so it is read through
    # the client's own request path and parsed into its results type, output by output
    from ogc_api_processes_client.api.execute_api import ExecuteApi
    from ogc_api_processes_client.models.inline_or_ref_data import InlineOrRefData

    http = ExecuteApi(client.api_client).execute_without_preload_content(
        "water-bodies",
        Execute.from_dict(
            {
                "inputs": {"aoi": box},
                "response": "document",
                "outputs": {"catalog": {"transmissionMode": "reference"}},
            }
        ),
        _request_timeout=180,
    )
    assert http.status == 200
    sync_doc = {k: InlineOrRefData.from_dict(v) for k, v in json.loads(http.data).items()}
    sync_link = sync_doc["catalog"].actual_instance
    assert requests.get(sync_link.href, timeout=10).json()["type"] == "Catalog"
    # the job list: the client's call, then each filter, every page parsing as its JobList
    listed = client.get_jobs()
    assert submitted.job_id in {j.job_id for j in listed.jobs}
    long_job = client.execute_simple(
        "sleep",
        {"inputs": {"steps": 300, "seconds": 0.2}},
        _headers={"Prefer": "respond-async", "Content-Type": "application/json"},
    )
    deadline = time.monotonic() + 30
    while client.get_status(long_job.job_id).status.value != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for params, expect in (
        ({"status": "running"}, {long_job.job_id}),
        ({"status": "successful", "processID": "sleep"}, {submitted.job_id, ref.job_id}),
        ({"type": "process", "limit": 2}, None),
        ({"datetime": f"{done.created.isoformat()}/.."}, {submitted.job_id}),
        ({"minDuration": 0, "processID": "sleep"}, {submitted.job_id}),
        ({"maxDuration": 3600}, {submitted.job_id}),
    ):
        r = requests.get(f"{server.url}/jobs", params=params, timeout=10)
        assert r.status_code == 200, (params, r.text)
        page = JobList.from_json(r.text)
        got = {j.job_id for j in page.jobs}
        if expect is None:
            assert len(got) == 2 and any(lk.rel == "next" for lk in page.links)
        else:
            assert expect <= got, (params, got)
        assert (
            all(j.status.value == params["status"] for j in page.jobs)
            if "status" in params
            else True
        )
    # dismiss: the client's call, then the job reads dismissed
    dismissed = client.dismiss(long_job.job_id)
    assert dismissed.status.value == "dismissed"
    assert client.get_status(long_job.job_id).status.value == "dismissed"
    # unknown job and unknown process: OGC exceptions, parsed by the client's model
    for call in (
        lambda: client.get_status("no-such-job"),
        lambda: client.get_process_description("no-such-process"),
    ):
        with pytest.raises(NotFoundException) as e:
            call()
        problem = OGCException.from_json(e.value.body)
        assert problem.status == 404 and problem.type.startswith(
            "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-"
        )


def test_owslib_drives_processes_and_execution(server: Server) -> None:
    from owslib.ogcapi.processes import Processes

    api = Processes(server.url)
    assert any(c.endswith("/conf/core") for c in api.conformance()["conformsTo"])
    ids = {p["id"] for p in api.processes()}
    assert {"sleep", "water-bodies"} <= ids
    assert api.process("sleep")["id"] == "sleep"
    # sync with OWSLib's default response (document): the results document
    doc = api.execute("sleep", inputs={"steps": 1})
    assert doc["catalog"]["value"]["type"] == "Catalog"
    raw = api.execute("sleep", inputs={"steps": 1}, response="raw")
    assert raw["type"] == "Catalog"
    # async: OWSLib returns the statusInfo; the Location header names the job
    info = api.execute("sleep", inputs={"steps": 1}, async_=True)
    assert info["status"] == "accepted" and info["jobID"]
    assert api.response_headers["Location"].endswith(info["jobID"])
    deadline = time.monotonic() + 60
    while requests.get(f"{server.url}/jobs/{info['jobID']}", timeout=10).json()["status"] != (
        "successful"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    results = requests.get(f"{server.url}/jobs/{info['jobID']}/results", timeout=10).json()
    assert results["catalog"]["value"]["type"] == "Catalog"  # OWSLib asked for a document
    with pytest.raises(RuntimeError) as e:
        api.process("no-such-process")
    assert json.loads(str(e.value))["status"] == 404
