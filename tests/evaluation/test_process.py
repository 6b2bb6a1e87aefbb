"""`map-evaluation` through a running server: its description, the report as the results
(its picture served beside it), and a bad input failing with the library's message."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.evaluation import data
from tests.support.server import Server, assert_valid


def test_map_evaluation_process(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    class_map = data.write_map(folder / "classification.tif")
    ref = data.write_reference(folder / "reference.gpkg")
    inputs = {"map": str(class_map), "reference": ref.as_uri(), "field": "landcover",
              "mapping": {k: v.split("|") for k, v in data.MAPPING.items()}}  # fmt: skip
    srv = Server(tmp_path / "var", extra_env={"APP_PACKAGE_DATA_ROOTS": str(folder)}).start()
    try:
        desc = srv.get("/processes/map-evaluation", params={"f": "json"}).json()
        assert_valid(desc, "process.yaml")
        assert set(desc["outputs"]) == {"report"}
        # synchronous, as a results document: the report under its output id
        r = srv.execute("map-evaluation", inputs, prefer=None, response="document")
        assert r.status_code == 200, r.text
        assert_valid(r.json(), "results.yaml")
        report = r.json()["report"]["value"]
        assert report["cells"]["compared"] == sum(data.CELLS)
        assert abs(report["kappa"] - data.KAPPA) < 1e-9
        # asynchronous: the raw report, its picture served by the server
        job = srv.submit("map-evaluation", inputs)
        assert srv.wait(job, ("successful", "failed"))["status"] == "successful"
        report = srv.get(f"/jobs/{job}/results").json()
        assert abs(report["overall_accuracy"] - data.OVERALL) < 1e-9
        preview = next(lk["href"] for lk in report["links"] if lk["rel"] == "preview")
        assert preview.startswith(f"{srv.url}/outputs/{job}/")
        png = requests.get(preview, timeout=10)
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        # other people's clients: OWSLib (sync, its default results document) and EOEPCA's
        # generated client (async: statusInfo, status and results parse in its models)
        from owslib.ogcapi.processes import Processes

        doc = Processes(srv.url).execute("map-evaluation", inputs=inputs)
        assert doc["report"]["value"]["cells"]["compared"] == sum(data.CELLS)
        from ogc_api_processes_client.api_client_wrapper import ApiClientWrapper
        from ogc_api_processes_client.configuration import Configuration

        client = ApiClientWrapper(configuration=Configuration(host=srv.url))
        assert client.get_process_description("map-evaluation").outputs
        info = client.execute_simple(
            "map-evaluation",
            {"inputs": inputs, "response": "document"},
            _headers={"Prefer": "respond-async", "Content-Type": "application/json"},
        )
        assert srv.wait(info.job_id, ("successful", "failed"))["status"] == "successful"
        assert client.get_status(info.job_id).status.value == "successful"
        from ogc_api_processes_client.models.qualified_input_value import QualifiedInputValue

        qualified = client.get_result(info.job_id)["report"].actual_instance
        assert isinstance(qualified, QualifiedInputValue)
        assert qualified.media_type == "application/json"
        # a field the reference lacks: the job fails with the library's message
        r = srv.execute("map-evaluation", {**inputs, "field": "kind"}, prefer=None)
        assert r.status_code == 400, r.text
        assert "has no field 'kind': its fields are 'id', 'landcover'" in r.json()["detail"]
    finally:
        srv.stop()
