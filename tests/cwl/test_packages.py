"""The CWL application packages (cwl/*.cwl): validated, compared with the OGC processes, and run.

Validation uses the real tools: `cwltool --validate`, `eoap-validator` (OGC 20-089 rules, one
entry point per file), `transpiler-mate` (EOEPCA's schema.org metadata check) and `cwl2ogc` (what an
ADES exposes). The real runs call `cwltool --no-container` and
`toil-cwl-runner --batchSystem single_machine` with `app-package` from this venv on PATH, on the
bundled real sample (40 EuroSAT chips, a real Sentinel-2 L1C subset), and check the staged-out STAC
catalogs with the STAC schemas and against what the OGC processes write for the same inputs.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from app_package import __version__
from app_package.jobs.cwl_local import local_copy
from tests.conftest import REPO, SCHEMAS
from tests.support.cwl import (
    BIN,
    CLASSIFICATION,
    RUNNER_ONLY,
    SAMPLE_CHIPS,
    SWEEP,
    TRAINING,
    WATER,
    assert_inputs_match_the_server,
    cwltool,
    directory,
    ogc_inputs,
    run_cwl,
    runner_env,
    write_product,
)

PACKAGES = (TRAINING, SWEEP, CLASSIFICATION, WATER)  # one package, one Workflow, per file
RELEASE = yaml.safe_load((REPO / "cwl" / "release.yml").read_text())
IMAGE = f"{RELEASE['image']}:{__version__}"
# schema.org metadata EOEPCA's tools require (codemeta-style; transpiler-mate validates it)
METADATA_KEYS = (
    "s:name",
    "s:description",
    "s:dateCreated",
    "s:softwareVersion",
    "s:license",
    "s:keywords",
    "s:codeRepository",
    "s:softwareHelp",
    "s:publisher",
    "s:author",
)


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def graph(path: Path) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in load(path)["$graph"]}


# ---------------------------------------------------------------- static checks
@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_cwltool_validates(package: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [str(BIN / "cwltool"), "--validate", str(package)],
        capture_output=True, text=True, env=runner_env(tmp_path), check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"{package} is valid CWL." in r.stdout + r.stderr


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_eoap_validator_passes_the_file_as_an_ades_gets_it(package: Path, tmp_path: Path) -> None:
    """No `#id`: the file's one Workflow is the entry point; nothing failed, nothing to review."""
    report_file = tmp_path / "report.json"
    r = subprocess.run(
        [str(BIN / "eoap-validator"), "--output", str(report_file), str(package)],
        capture_output=True, text=True, env=runner_env(tmp_path), check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(report_file.read_text())
    assert report["entrypoint"] == package.stem
    assert report["counts"]["passed"] > 50
    not_passed = [
        (f["rule_id"], f["status"]) for f in report["findings"] if f["status"] != "passed"
    ]
    assert not_passed == []
    assert report["counts"]["failed"] == report["counts"]["needs-review"] == 0


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_transpiler_mate_accepts_the_metadata(package: Path, tmp_path: Path) -> None:
    """EOEPCA's transpiler-mate loads the schema.org metadata as a SoftwareApplication (its
    plugins, cwlwrap among them, refuse a package it cannot load)."""
    out = tmp_path / "bundle.cwl"
    r = subprocess.run(
        [str(BIN / "transpiler-mate"), "bundle", "--output", str(out),
         f"{package}#{package.stem}"],
        capture_output=True, text=True, env=runner_env(tmp_path), check=False, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0 and out.is_file(), r.stderr[-3000:]


def test_release_placeholders_agree() -> None:
    """cwl/release.yml states the repository, publisher, author and image once; every package,
    the Dockerfile and the Argo manifests carry the same."""
    wrong = []
    for package in PACKAGES:
        doc = load(package)
        wrong += [f"{package.name}: {k}" for k, v in RELEASE["metadata"].items() if doc.get(k) != v]
        for p in graph(package).values():
            pull = p.get("requirements", {}).get("DockerRequirement", {}).get("dockerPull")
            if p["class"] == "CommandLineTool" and pull != IMAGE:
                wrong.append(f"{package.name}#{p['id']}: dockerPull {pull}")
    for path in [REPO / "Dockerfile", *sorted((REPO / "deploy" / "argo").glob("*.yaml"))]:
        text = path.read_text()
        if "/app-package:" in text and IMAGE not in text:
            wrong.append(f"{path.relative_to(REPO)}: not {IMAGE}")
    assert wrong == [], "disagree with cwl/release.yml: " + "; ".join(wrong)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_package_metadata_and_requirements(package: Path) -> None:
    doc = load(package)
    assert doc["cwlVersion"] == "v1.2"
    assert doc["$namespaces"]["s"] == "https://schema.org/"
    assert doc["s:softwareVersion"] == __version__
    assert isinstance(doc["s:softwareVersion"], str)
    assert [k for k in METADATA_KEYS if not doc.get(k)] == []
    assert doc["s:name"] == package.stem
    assert doc["s:license"]["s:identifier"] == "MIT"
    for author in doc["s:author"]:
        assert author["@type"] == "s:Person"
        assert all(
            author.get(f"s:{k}") for k in ("givenName", "familyName", "email", "affiliation")
        )
    processes = graph(package)
    workflows = [p for p in processes.values() if p["class"] == "Workflow"]
    tools = [p for p in processes.values() if p["class"] == "CommandLineTool"]
    assert [w["id"] for w in workflows] == [package.stem] and tools
    for wf in workflows:
        assert wf["label"].strip() and wf["doc"].strip()
        for name, inp in wf["inputs"].items():
            assert inp["label"].strip() and inp["doc"].strip(), name
        for out in wf["outputs"].values():
            assert out["type"] == "Directory"  # stage-out: one folder holding catalog.json
    for tool in tools:
        # a requirement, as an ADES wants it (local runs relax a copy: app_package.jobs.cwl_local)
        assert "DockerRequirement" not in tool.get("hints", {})
        assert tool["requirements"]["DockerRequirement"]["dockerPull"] == IMAGE
        res = tool["requirements"]["ResourceRequirement"]
        assert 1 <= res["coresMin"] <= res["coresMax"] and 0 < res["ramMin"] <= res["ramMax"]
        assert tool["baseCommand"][0] == "app-package"
        # no logic: every input maps onto an option, or onto MLflow's environment variable
        for name, inp in tool["inputs"].items():
            env = tool["requirements"].get("EnvVarRequirement", {}).get("envDef", {})
            assert "inputBinding" in inp or any(name in v for v in env.values()), name


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_local_copy_only_relaxes_the_container(package: Path, tmp_path: Path) -> None:
    local = load(local_copy(package, tmp_path))
    original = load(package)
    assert {k: v for k, v in local.items() if k != "$graph"} == {
        k: v for k, v in original.items() if k != "$graph"
    }
    for ours, theirs in zip(local["$graph"], original["$graph"], strict=True):
        required = theirs.get("requirements", {})
        if "DockerRequirement" in required:
            assert ours["hints"]["DockerRequirement"] == required["DockerRequirement"]
            assert "DockerRequirement" not in ours["requirements"]
            ours = {**ours, "requirements": required, "hints": theirs.get("hints", {})}
            theirs = {**theirs, "hints": theirs.get("hints", {})}
        assert ours == theirs


def test_cwl_local_command_writes_the_copies(tmp_path: Path) -> None:
    """The documented door: `app-package cwl-local cwl/*.cwl -o DIR`, one valid copy per file;
    a missing file is named, exit status 2."""
    out = tmp_path / "local"
    r = subprocess.run(
        [str(BIN / "app-package"), "cwl-local", *map(str, PACKAGES), "-o", str(out)],
        capture_output=True, text=True, env=runner_env(tmp_path), check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(out / p.name) for p in PACKAGES]
    assert load(out / WATER.name) == load(local_copy(WATER, tmp_path / "direct"))
    r = subprocess.run(
        [str(BIN / "cwltool"), "--validate", str(out / SWEEP.name)],
        capture_output=True, text=True, env=runner_env(tmp_path), check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    missing = subprocess.run(
        [str(BIN / "app-package"), "cwl-local", str(tmp_path / "nope.cwl"), "-o", str(out)],
        capture_output=True, text=True, env=runner_env(tmp_path), check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "nope.cwl: no such CWL package" in missing.stderr


def test_no_container_runs_need_the_local_copy(tmp_path: Path) -> None:
    """Why the copy exists: cwltool --no-container refuses the package as an ADES gets it."""
    job: dict[str, Any] = {"items": []}
    r, _ = run_cwl(
        [str(BIN / "cwltool"), "--no-container", f"{WATER}#water-bodies"], job, tmp_path,
        check=False,
    )  # fmt: skip
    assert "--no-container, but this CommandLineTool has DockerRequirement under" in r.stderr
    r, _ = run_cwl(cwltool(tmp_path, WATER, "water-bodies"), job, tmp_path, check=False)
    assert "DockerRequirement" not in r.stderr


def test_training_eo_input_gpu_hint_and_sweep() -> None:
    processes = graph(TRAINING)
    assert processes["eurosat-training"]["inputs"]["stac"]["type"] == "Directory"
    cuda = processes["train-gpu"]["hints"]["cwltool:CUDARequirement"]
    assert cuda["cudaDeviceCountMin"] >= 1
    assert "cwltool:CUDARequirement" not in processes["train"].get("hints", {})
    steps = processes["eurosat-training"]["steps"]
    assert (steps["train"]["run"], steps["train_gpu"]["run"]) == ("#train", "#train-gpu")
    assert processes["train"]["requirements"]["NetworkAccess"]["networkAccess"] is True  # MLflow
    sweep = graph(SWEEP)
    for step in ("train", "train_gpu"):
        scatter = sweep["eurosat-training-sweep"]["steps"][step]
        assert scatter["scatterMethod"] == "flat_crossproduct"
        assert scatter["run"] == f"#{step.replace('_', '-')}"
        assert len(scatter["scatter"]) >= 2
    # the sweep file carries the training tools verbatim (one file per ADES process): no drift
    for tool in ("train", "train-gpu"):
        assert sweep[tool] == processes[tool], f"{SWEEP.name}#{tool} differs from {TRAINING.name}"


def test_classification_scatters_over_products() -> None:
    processes = graph(CLASSIFICATION)
    wf = processes["tile-classification"]
    assert wf["inputs"]["product"]["type"] == "Directory[]"
    assert wf["steps"]["classify"]["scatter"] == "product"
    assert wf["steps"]["merge"]["in"]["catalogs"] == "classify/catalog"
    assert processes["stac-merge"]["baseCommand"] == ["app-package", "stac-merge"]


def test_dockerfile_builds_the_image_the_packages_name() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert f'org.opencontainers.image.version="{__version__}"' in text
    assert f"docker build -t {IMAGE} ." in text
    assert "FROM python:3.12-" in text
    assert "pip install -c constraints.txt ." in text


# ---------------------------------------------------------------- cwl2ogc vs the OGC processes
@pytest.mark.parametrize(
    ("package", "entry", "module"),
    [(TRAINING, "eurosat-training", "training"), (CLASSIFICATION, "tile-classification",
      "classification"), (WATER, "water-bodies", "water_bodies")],
    ids=["eurosat-training", "tile-classification", "water-bodies"],
)  # fmt: skip
def test_ades_inputs_match_the_server(package: Path, entry: str, module: str) -> None:
    """What an ADES derives from the package (cwl2ogc) = what our pygeoapi process describes."""
    import importlib

    process = importlib.import_module(f"processes.{module}").PROCESS_METADATA
    assert process["id"] == entry
    assert process["version"] == __version__
    cwl = ogc_inputs(package, entry)
    server = process["inputs"]
    assert set(cwl) - set(server) == set(RUNNER_ONLY[entry])
    assert set(server) <= set(cwl)
    assert_inputs_match_the_server(entry, cwl, server)
    for name in server:
        assert cwl[name]["title"] and cwl[name]["description"]


# ---------------------------------------------------------------- real runs


def structure(catalog_json: Path, skip_rels: frozenset[str] = frozenset()) -> list[Any]:
    """What a catalog looks like, names aside: per STAC file its depth, type, extensions, assets
    (key, media type, roles) and link relations; plus the other files by suffix."""
    from app_package.stac.validation import walk_json

    root = catalog_json.parent
    out: list[Any] = []
    files = walk_json(catalog_json)
    for f in files:
        d = json.loads(f.read_text())
        rels = sorted(
            {link["rel"] for link in d["links"]} - (skip_rels if f == files[0] else set())
        )
        assets = sorted(
            (k, a.get("type"), tuple(a.get("roles", []))) for k, a in d.get("assets", {}).items()
        )
        depth = len(f.relative_to(root).parts)
        out.append((depth, d["type"], sorted(d.get("stac_extensions", [])), assets, rels))
    others = Counter(p.suffix for p in root.rglob("*") if p.is_file() and p.suffix != ".json")
    return [sorted(out, key=repr), sorted(others.items())]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny training run through `cwltool --no-container` (1 epoch, 4 real chips per class)."""
    from mlflow import MlflowClient

    work = tmp_path_factory.mktemp("cwl-train")
    tracking = f"sqlite:///{work / 'mlflow.db'}"
    # A local store keeps artifacts under the creating process's working folder unless told
    # otherwise, and a CWL job's working folder is deleted: give the experiment a lasting place
    # (an MLflow server with an artifact store does this in a deployment).
    MlflowClient(tracking).create_experiment(
        "eurosat", artifact_location=(work / "artifacts").as_uri()
    )
    job = {
        "stac": directory(SAMPLE_CHIPS), "epochs": 1, "samples_per_class": 4, "patience": 0,
        "seed": 0, "tracking_uri": tracking,
    }  # fmt: skip
    r, out = run_cwl(cwltool(work, TRAINING, "eurosat-training"), job, work)
    return {"work": work, "tracking_uri": tracking, "job": job, "out": out, "log": r.stderr}


@pytest.mark.slow
def test_cwltool_trains_into_a_valid_stac_catalog(trained: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    from app_package.stac.validation import validate_catalog

    catalog_dir = Path(trained["out"]["catalog"]["path"])
    assert catalog_dir == trained["work"] / "out" / "catalog"
    assert validate_catalog(catalog_dir / "catalog.json", SCHEMAS) >= 2
    names = {p.name for p in catalog_dir.rglob("*")}
    assert {"model.pt", "model.json", "metrics.json"} <= names
    assert "[step train_gpu] will be skipped" in trained["log"]
    # tracked in the MLflow store given as an input, not in a default one
    client = MlflowClient(trained["tracking_uri"])
    version = client.get_model_version("eurosat-classifier", "1")  # the fixture's run
    assert version.run_id
    run = client.get_run(version.run_id)
    assert run.data.params["epochs"] == "1" and run.info.status == "FINISHED"


@pytest.mark.slow
def test_cwltool_sweep_tracks_every_run_and_links_their_catalogs(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from app_package.stac.validation import validate_catalog

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking).create_experiment(
        "sweep", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    job = {
        "stac": directory(SAMPLE_CHIPS), "lr": [0.001, 0.01], "batch_size": [16],
        "arch": ["smallcnn"], "epochs": 1, "samples_per_class": 3, "experiment": "sweep",
        "tracking_uri": tracking,
    }  # fmt: skip
    _, out = run_cwl(cwltool(tmp_path, SWEEP, "eurosat-training-sweep"), job, tmp_path)
    parent = Path(out["catalog"]["path"]) / "catalog.json"
    doc = json.loads(parent.read_text())
    assert doc["id"] == "eurosat-training-sweep"
    assert len([link for link in doc["links"] if link["rel"] == "child"]) == 2
    assert validate_catalog(parent, SCHEMAS) >= 5
    client = MlflowClient(tracking)
    versions = client.search_model_versions("name='eurosat-classifier'")
    lrs = sorted(float(client.get_run(str(v.run_id)).data.params["lr"]) for v in versions)
    assert lrs == [0.001, 0.01]


@pytest.mark.slow
def test_cwltool_classifies_like_the_server(
    trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app_package.stac.validation import validate_catalog
    from processes.classification import ClassificationProcessor

    model = "models:/eurosat-classifier/1"
    product = write_product(tmp_path / "staged", "s2-l1c-a")
    job = {"product": [directory(product)], "model": model,
           "tracking_uri": trained["tracking_uri"]}  # fmt: skip
    _, out = run_cwl(cwltool(tmp_path, CLASSIFICATION, "tile-classification"), job, tmp_path)
    parent = Path(out["catalog"]["path"]) / "catalog.json"
    assert validate_catalog(parent, SCHEMAS) >= 3
    children = [json.loads(parent.read_text())["links"]]
    (child_link,) = [link for link in children[0] if link["rel"] == "child"]
    child = (parent.parent / child_link["href"]).resolve()
    assert any(p.suffix == ".tif" for p in child.parent.rglob("*"))

    # the OGC process, for the same product and model, writes the same structure
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["tracking_uri"])  # restored afterwards
    processor = ClassificationProcessor(
        {"name": "tile-classification", "tracking_uri": trained["tracking_uri"]}
    )
    server_catalog = processor.run(
        {"product": str(product / "item.json"), "model": model}, tmp_path / "server",
        lambda p, m: None,
    )  # fmt: skip
    assert structure(child, frozenset({"parent"})) == structure(server_catalog)


@pytest.mark.slow
def test_cwltool_training_matches_the_server(trained: dict[str, Any], tmp_path: Path) -> None:
    from processes.training import TrainingProcessor

    processor = TrainingProcessor(
        {"name": "eurosat-training", "tracking_uri": trained["tracking_uri"]}
    )
    inputs = {k: v for k, v in trained["job"].items() if k not in ("stac", "tracking_uri")}
    server_catalog = processor.run(
        {"stac": str(SAMPLE_CHIPS / "catalog.json"), **inputs}, tmp_path / "server",
        lambda p, m: None,
    )  # fmt: skip
    cwl_catalog = Path(trained["out"]["catalog"]["path"]) / "catalog.json"
    assert structure(cwl_catalog) == structure(server_catalog)


@pytest.mark.slow
def test_toil_scatters_classification_over_two_products(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    from app_package.stac.validation import validate_catalog

    staged = tmp_path / "staged"
    products = [write_product(staged, "s2-l1c-a"), write_product(staged, "s2-l1c-b")]
    job = {"product": [directory(p) for p in products], "model": "models:/eurosat-classifier/1",
           "tracking_uri": trained["tracking_uri"]}  # fmt: skip
    argv = [
        str(BIN / "toil-cwl-runner"), "--batchSystem", "single_machine", "--maxCores", "2",
        "--jobStore", f"file:{tmp_path / 'jobstore'}", "--outdir", str(tmp_path / "out"),
        "--workDir", str(tmp_path), "--no-container", "--logLevel", "INFO",
        f"{local_copy(CLASSIFICATION, tmp_path / 'package')}#tile-classification",
    ]  # fmt: skip
    _, out = run_cwl(argv, job, tmp_path)
    parent = Path(out["catalog"]["path"]) / "catalog.json"
    doc = json.loads(parent.read_text())
    assert doc["id"] == "tile-classification"
    children = [link["href"] for link in doc["links"] if link["rel"] == "child"]
    assert len(set(children)) == 2  # one catalog per product
    for href in children:
        child = json.loads((parent.parent / href).read_text())
        assert {"rel": "parent", "href": "../catalog.json", "type": "application/json"} in (
            child["links"]
        )
    assert validate_catalog(parent, SCHEMAS) >= 5


# ---------------------------------------------------------------- bad input
@pytest.mark.slow
def test_staged_folder_without_catalog_fails_with_the_library_message(tmp_path: Path) -> None:
    empty = tmp_path / "staged"
    empty.mkdir()
    (empty / "notes.txt").write_text("no catalog here")
    job = {"stac": directory(empty), "epochs": 1, "tracking_uri": f"sqlite:///{tmp_path}/m.db"}
    r, _ = run_cwl(cwltool(tmp_path, TRAINING, "eurosat-training"), job, tmp_path, check=False)
    assert r.returncode != 0
    assert "app-package train: error: catalog" in r.stderr and "does not exist" in r.stderr
    assert "catalog.json does not exist" in r.stderr
    assert not (tmp_path / "out" / "catalog").exists()


@pytest.mark.slow
def test_catalog_without_items_fails_with_the_library_message(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "catalog.json").write_text(json.dumps(
        {"type": "Catalog", "stac_version": "1.1.0", "id": "empty", "description": "no items",
         "links": []}
    ))  # fmt: skip
    job = {"stac": directory(staged), "epochs": 1, "tracking_uri": f"sqlite:///{tmp_path}/m.db"}
    r, _ = run_cwl(cwltool(tmp_path, TRAINING, "eurosat-training"), job, tmp_path, check=False)
    assert r.returncode != 0
    assert "app-package train: error: no items found in" in r.stderr


@pytest.mark.slow
def test_product_missing_a_band_fails_with_the_library_message(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    product = write_product(tmp_path / "staged", "s2-l1c-no-b8a", drop_band="B8A")
    job = {"product": [directory(product)], "model": "models:/eurosat-classifier/1",
           "tracking_uri": trained["tracking_uri"]}  # fmt: skip
    r, _ = run_cwl(
        cwltool(tmp_path, CLASSIFICATION, "tile-classification"), job, tmp_path, check=False
    )
    assert r.returncode != 0
    assert "app-package classify: error:" in r.stderr
    assert "B8A" in r.stderr.split("app-package classify: error:", 1)[1].splitlines()[0]
