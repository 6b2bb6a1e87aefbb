"""Toil on a real Slurm cluster (tests/support/slurm.py: munge, slurmctld and slurmd on this host):
the tile-classification package scattered over products as Slurm jobs, directly and through the
server's CWL engine (`APP_PACKAGE_ENGINE=toil`, `APP_PACKAGE_TOIL_BATCH_SYSTEM=slurm`), its
results equal to the local engine's, and a dismissed job's Slurm jobs cancelled."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from app_package.defaults import CHAMPION_URI, DEFAULT_MODEL_CATALOG
from app_package.jobs.cwl_engine import SLURM_COMMENT, runner_argv, slurm_env
from app_package.jobs.cwl_local import local_copy
from tests.support.cwl import (
    BIN,
    CLASSIFICATION,
    SAMPLE_L1C,
    directory,
    run_cwl,
    runner_env,
    write_product,
)
from tests.support.server import Server, job_processes
from tests.support.slurm import SlurmCluster

MODEL = str(DEFAULT_MODEL_CATALOG)  # the shipped model (the server registers it as champion)
ENTRY = "tile-classification"
LIVE = "PD,R,CG"  # Slurm job states that still hold the node (pending, running, completing)


@dataclass(frozen=True)
class ClassMap:
    """What a classification decided for one product: class and cloud-mask cells."""

    classes: list[list[int]]
    clouds: list[list[int]]
    cloud_cover: float


def class_maps(catalog_json: Path) -> list[ClassMap]:
    """The class maps of every classification item under a catalog."""
    import rasterio

    from app_package.stac.validation import walk_json

    maps = []
    for path in walk_json(catalog_json):
        doc = json.loads(path.read_text())
        if doc["type"] != "Feature":
            continue
        cells = {}
        for key in ("classification", "cloud-mask"):
            with rasterio.open(path.parent / doc["assets"][key]["href"]) as src:
                cells[key] = src.read(1).tolist()
        maps.append(
            ClassMap(cells["classification"], cells["cloud-mask"],
                     doc["properties"]["eo:cloud_cover"])
        )  # fmt: skip
    return maps


@pytest.fixture(scope="module")
def local_result(tmp_path_factory: pytest.TempPathFactory) -> ClassMap:
    """The bundled product classified by the library itself (what the local engine runs)."""
    out = tmp_path_factory.mktemp("local") / "catalog"
    subprocess.run(
        [str(BIN / "app-package"), "classify", str(SAMPLE_L1C / "item.json"), "--model", MODEL,
         "--output", str(out)],
        env=runner_env(out.parent), capture_output=True, check=True, timeout=300,
    )  # fmt: skip
    (result,) = class_maps(out / "catalog.json")
    return result


def _ours(slurm: SlurmCluster, comment: str, states: str = "all") -> list[dict[str, str]]:
    return [j for j in slurm.jobs(states) if j["comment"] == comment]


@pytest.mark.slow
def test_toil_scatters_classification_over_slurm_jobs(
    slurm: SlurmCluster, local_result: ClassMap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    comment = SLURM_COMMENT.format(job_id=tmp_path.name)
    for key, value in {**slurm.env, **slurm_env(comment, {})}.items():
        monkeypatch.setenv(key, value)  # the runner's environment (restored afterwards)
    products = [write_product(tmp_path / "staged", f"s2-l1c-{i}") for i in range(4)]
    job = {"product": [directory(p) for p in products], "model": MODEL}
    package = local_copy(CLASSIFICATION, tmp_path / "package")
    argv = runner_argv("toil", package, ENTRY, tmp_path, batch_system="slurm")
    assert argv[argv.index("--batchSystem") + 1] == "slurm"
    _, out = run_cwl(argv, job, tmp_path)

    jobs = _ours(slurm, comment)
    classify = [j for j in jobs if j["name"].endswith(".classify")]
    assert len(classify) == 4, jobs  # one Slurm job per product
    assert [j for j in jobs if j["name"].endswith(".stac-merge")], jobs
    assert {j["state"] for j in jobs} == {"COMPLETED"}, jobs
    maps = class_maps(Path(out["catalog"]["path"]) / "catalog.json")
    assert len(maps) == 4
    assert all(m == local_result for m in maps)  # each product as the local engine classifies it


@pytest.fixture(scope="module")
def slurm_server(slurm: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose CWL engine is Toil on the test Slurm cluster; the shipped model registered."""
    env = {**slurm.env, "APP_PACKAGE_ENGINE": "toil", "APP_PACKAGE_TOIL_BATCH_SYSTEM": "slurm",
           "APP_PACKAGE_DEFAULT_MODEL": "true"}  # fmt: skip
    srv = Server(tmp_path_factory.mktemp("slurm-server") / "var", extra_env=env).start()
    yield srv
    srv.stop()


INPUTS = {"product": str(SAMPLE_L1C / "item.json"), "model": CHAMPION_URI}


@pytest.mark.slow
def test_server_runs_classification_on_slurm(
    slurm_server: Server, slurm: SlurmCluster, local_result: ClassMap
) -> None:
    srv = slurm_server
    job = srv.submit(ENTRY, INPUTS)
    status = srv.wait(job, ("successful", "failed", "dismissed"), timeout=300)
    assert status["status"] == "successful", status
    jobs = _ours(slurm, SLURM_COMMENT.format(job_id=job))
    assert [j["name"] for j in jobs if j["name"].endswith(".classify")], jobs
    assert {j["state"] for j in jobs} == {"COMPLETED"}, jobs
    assert class_maps(srv.data_dir / "outputs" / job / "catalog.json") == [local_result]


@pytest.mark.slow
def test_dismiss_cancels_the_jobs_slurm_jobs(slurm_server: Server, slurm: SlurmCluster) -> None:
    srv = slurm_server
    job = srv.submit(ENTRY, INPUTS)
    comment = SLURM_COMMENT.format(job_id=job)
    deadline = time.monotonic() + 120
    while not _ours(slurm, comment, "R"):
        assert srv.status(job)["status"] in ("accepted", "running"), srv.status(job)
        assert time.monotonic() < deadline, "no Slurm job started"
        time.sleep(0.2)

    t0 = time.monotonic()
    r = requests.delete(f"{srv.url}/jobs/{job}", timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    srv.wait(job, ("dismissed",), timeout=10)
    while (_ours(slurm, comment, LIVE) or job_processes(job)) and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    assert _ours(slurm, comment, LIVE) == [], "Slurm jobs left 10 s after the dismiss"
    assert job_processes(job) == [], "runner processes left 10 s after the dismiss"
    assert {j["state"] for j in _ours(slurm, comment)} <= {"CANCELLED"}
    assert not list((srv.data_dir / "outputs").glob(f"*{job}*"))
