"""Browsing job outputs as a person or a STAC client would: the root catalog of all outputs, every
link of every output catalog in JSON and as an HTML page, `/jobs/{id}/results?f=html`, CORS."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import pytest
import requests

from app_package.defaults import CHAMPION_URI
from app_package.service import browse
from app_package.service.app import cors_origins
from tests.support.server import Server
from tests.support.stac_lint import stac_check_messages


# ==================================================================== pure parts
def test_root_catalog_lists_each_job_catalog_newest_first(tmp_path: Path) -> None:
    for i, job in enumerate(("old", "new")):
        (tmp_path / job).mkdir()
        (tmp_path / job / "catalog.json").write_text(json.dumps({"id": job, "title": f"T {job}"}))
        os.utime(tmp_path / job / "catalog.json", (1000 + i, 1000 + i))
    (tmp_path / "writing").mkdir()  # a job folder without its catalog yet: not listed
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "catalog.json").write_text("{")
    found = browse.find_output_catalogs(tmp_path)
    assert [c.job_id for c in found] == ["new", "old"]
    doc = browse.root_catalog("http://h/outputs/", found)
    assert doc["stac_version"] == "1.1.0" and doc["id"] == doc["id"].lower()
    children = [lk for lk in doc["links"] if lk["rel"] == "child"]
    assert [lk["href"] for lk in children] == [
        "http://h/outputs/new/catalog.json",
        "http://h/outputs/old/catalog.json",
    ]
    assert all(lk.get("title") for lk in doc["links"])
    assert browse.find_output_catalogs(tmp_path / "absent") == []


def test_html_page_escapes_and_links_pages() -> None:
    item = {
        "type": "Feature",
        "id": "x",
        "properties": {"title": "<script>alert(1)</script>", "k": {"a": 1}},
        "assets": {
            "thumbnail": {"href": "./t.png", "roles": ["thumbnail"], "type": "image/png"},
            "data": {"href": "./d.tif", "title": "D"},
        },
        "links": [
            {"rel": "parent", "href": "../catalog.json", "title": "up"},
            {"rel": "derived_from", "href": "https://elsewhere/item.json"},
        ],
    }
    page = browse.render_stac(item, "http://h/outputs/j/x/x.json", "http://h")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert '<img class="thumb" src="http://h/outputs/j/x/t.png"' in page
    assert 'href="http://h/outputs/j/x/d.tif"' in page
    assert 'href="http://h/outputs/j/catalog.json?f=html"' in page  # own documents: their page
    assert 'href="https://elsewhere/item.json"' in page  # others': as they are


def test_cors_origins_setting() -> None:
    assert cors_origins("*") == ["*"]
    assert cors_origins(" https://a.org, https://b.org ") == ["https://a.org", "https://b.org"]
    assert cors_origins("") == [] and cors_origins(None) == []
    assert cors_origins(["https://a.org"]) == ["https://a.org"]


# ==================================================================== a live server
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # the shipped model, registered at start-up as a user's `make serve` does
    srv = Server(
        tmp_path_factory.mktemp("browse") / "var", extra_env={"APP_PACKAGE_DEFAULT_MODEL": "true"}
    ).start()
    yield srv
    srv.stop()


def _walk(server: Server, starts: list[str], limit: int = 2000) -> dict[str, int]:
    """GET every document reachable on the server from `starts` through STAC links and assets,
    each JSON document also as its HTML page; returns {url: status}."""
    seen: dict[str, int] = {}
    queue = deque(starts)
    while queue and len(seen) < limit:
        url = urldefrag(queue.popleft())[0]
        if url in seen or not url.startswith(server.url):
            continue
        r = requests.get(url, timeout=30)
        seen[url] = r.status_code
        if "json" not in r.headers.get("content-type", "") or r.status_code != 200:
            continue
        doc = r.json()
        if not isinstance(doc, dict):
            continue
        if doc.get("type") in ("Catalog", "Collection", "Feature"):
            page = url + ("&" if "?" in url else "?") + "f=html"
            seen[page] = requests.get(page, timeout=30).status_code
        hrefs = [lk.get("href", "") for lk in doc.get("links", []) if isinstance(lk, dict)]
        hrefs += [a.get("href", "") for a in doc.get("assets", {}).values()]
        queue.extend(urljoin(url, h) for h in hrefs if h)
    return seen


@pytest.mark.slow
def test_every_output_link_answers_in_json_and_html(server: Server) -> None:
    """A training, a classification and a water-bodies job; then every link from /stac,
    /stac/outputs, /outputs/catalog.json and each job's results, JSON and HTML: no 5xx, and
    every link of an output catalog resolves."""
    jobs = [
        server.submit("eurosat-training", {"epochs": 1, "samples_per_class": 3, "patience": 0}),
        server.submit("tile-classification", {"model": CHAMPION_URI}),
        server.submit("water-bodies", {}),
    ]
    for job in jobs:
        s = server.wait(job, ("successful", "failed"), timeout=600)
        assert s["status"] == "successful", s["message"]
    starts = [f"{server.url}{p}" for p in ("/stac", "/stac/outputs", "/outputs/catalog.json")]
    starts += [f"{server.url}/jobs/{j}/results" for j in jobs]
    seen = _walk(server, starts)
    errors = {u: s for u, s in seen.items() if s >= 500}
    assert not errors, errors
    outputs = {u: s for u, s in seen.items() if u.startswith(server.url + "/outputs/")}
    assert outputs and all(s == 200 for s in outputs.values()), outputs
    # the root catalog reaches each job's catalog, and through it the items and their assets
    for job in jobs:
        assert f"{server.url}/outputs/{job}/catalog.json" in outputs
    assert any(u.endswith(".tif") for u in outputs) and any(
        u.endswith(".onnx") or u.endswith(".pt") for u in outputs
    )
    # STAC best practices (stac-check) hold for every output document as served
    stac_docs = [u for u in outputs if u.endswith(".json") and u + "?f=html" in seen]
    assert len(stac_docs) >= 7  # 1 root + 3 job catalogs + 3 items
    for url in stac_docs:
        assert stac_check_messages(url) == {}, url
    # the same answers under /stac/outputs (pygeoapi's STAC endpoint), by redirect
    for job in jobs:
        r = server.get(f"/stac/outputs/{job}")
        assert r.status_code == 200 and r.json()["type"] == "Catalog", r.text[:200]
    # results of a job as a page a person reads
    r = server.get(f"/jobs/{jobs[1]}/results", params={"f": "html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "landcover" in r.text and "?f=html" in r.text


def _link(doc: dict, rel: str, contains: str) -> str:
    return next(lk["href"] for lk in doc["links"] if lk["rel"] == rel and contains in lk["href"])


@pytest.mark.slow
def test_lineage_map_model_run_training_data(server: Server) -> None:
    """map → MLM item → MLflow run → training data, over HTTP and in MLflow; and back from the
    run to the MLM item."""
    from mlflow.tracking import MlflowClient

    train = server.submit("eurosat-training", {"epochs": 1, "samples_per_class": 3, "patience": 0})
    assert server.wait(train, ("successful", "failed"), timeout=600)["status"] == "successful"
    catalog = server.get(f"/jobs/{train}/results").json()
    model_item_url = next(lk["href"] for lk in catalog["links"] if lk["rel"] == "item")
    model_item = requests.get(model_item_url, timeout=10).json()
    job = server.submit(
        "tile-classification", {"model": model_item["properties"]["mlflow:model_uri"]}
    )
    assert server.wait(job, ("successful", "failed"), timeout=600)["status"] == "successful"
    result = server.get(f"/jobs/{job}/results").json()
    map_url = next(lk["href"] for lk in result["links"] if lk["rel"] == "item")
    class_map = requests.get(map_url, timeout=10).json()
    # map → its source product and its model's MLM item, both served
    sources = {lk["title"]: lk["href"] for lk in class_map["links"] if lk["rel"] == "derived_from"}
    assert sources.pop("Source product") == f"{server.url}/sample/s2-l1c/item.json"
    assert requests.get(f"{server.url}/sample/s2-l1c/item.json", timeout=10).status_code == 200
    page = requests.get(f"{server.url}/sample/s2-l1c/item.json?f=html", timeout=10)
    assert page.headers["content-type"].startswith("text/html") and "B04" in page.text
    (model_href,) = sources.values()
    assert model_href == model_item_url
    # model → its training data (the bundled sample catalog, served) and its MLflow run
    data_href = _link(model_item, "derived_from", "/sample/")
    assert requests.get(data_href, timeout=10).json()["type"] == "Catalog"
    run_id = _link(model_item, "via", "runs:/").removeprefix("runs:/").split("/")[0]
    client = MlflowClient(tracking_uri=f"sqlite:///{server.data_dir}/mlflow.db")
    run = client.get_run(run_id)
    # run → back to the MLM item (the tag holds its path in the outputs, served at this URL)
    tagged = Path(run.data.tags["app_package.stac_item"])
    rel = tagged.resolve().relative_to((server.data_dir / "outputs").resolve())
    assert f"{server.url}/outputs/{rel.as_posix()}" == model_item_url
    # ... and to the training data: the run's dataset input names the same catalog
    assert run.inputs is not None
    (dataset,) = run.inputs.dataset_inputs
    assert "sample/eurosat/catalog.json" in dataset.dataset.source


def test_cors_lets_any_origin_read_and_none_write(server: Server) -> None:
    origin = {"Origin": "https://radiantearth.github.io"}
    for path in ("/outputs/catalog.json", "/stac/outputs", "/processes", "/jobs"):
        r = server.get(path, headers=origin)
        assert r.status_code == 200, path
        assert r.headers["access-control-allow-origin"] == "*", path
    pre = requests.options(
        f"{server.url}/outputs/catalog.json",
        headers={**origin, "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert pre.status_code == 200
    pre = requests.options(
        f"{server.url}/processes/water-bodies/execution",
        headers={**origin, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert pre.status_code == 400  # read-only for anyone: submitting needs a named origin


def test_named_cors_origins_may_submit(tmp_path: Path) -> None:
    srv = Server(
        tmp_path / "var", extra_env={"APP_PACKAGE_CORS_ORIGINS": "https://app.example"}
    ).start()
    try:
        pre = requests.options(
            f"{srv.url}/processes/water-bodies/execution",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
            timeout=10,
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://app.example"
        r = srv.get("/jobs", headers={"Origin": "https://other.example"})
        assert "access-control-allow-origin" not in r.headers
    finally:
        srv.stop()
