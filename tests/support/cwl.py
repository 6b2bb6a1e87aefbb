"""Running the CWL packages with real runners in tests: paths, environment, job documents."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from app_package.jobs.cwl_local import local_copy
from tests.conftest import REPO

CWL = REPO / "cwl"
TRAINING = CWL / "eurosat-training.cwl"
SWEEP = CWL / "eurosat-training-sweep.cwl"
CLASSIFICATION = CWL / "tile-classification.cwl"
WATER = CWL / "water-bodies.cwl"
BIN = Path(sys.executable).parent
SAMPLE = REPO / "app_package" / "sample"
SAMPLE_CHIPS = SAMPLE / "eurosat"
SAMPLE_L1C = SAMPLE / "s2-l1c"


def runner_env(tmp_path: Path) -> dict[str, str]:
    """The test's environment with this venv's `app-package` first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path)
    return env


def write_product(root: Path, name: str, drop_band: str | None = None) -> Path:
    """A staged-in product folder: the real L1C sample and a catalog.json linking its item."""
    shutil.copytree(SAMPLE_L1C, root / name)
    if drop_band:
        item = json.loads((root / name / "item.json").read_text())
        del item["assets"][drop_band]
        (root / name / "item.json").write_text(json.dumps(item))
    catalog = {
        "type": "Catalog", "stac_version": "1.1.0", "id": name,
        "description": f"staged-in product {name}",
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": "application/json"},
            {"rel": "item", "href": "./item.json", "type": "application/geo+json"},
        ],
    }  # fmt: skip
    (root / name / "catalog.json").write_text(json.dumps(catalog, indent=1))
    return root / name


def run_cwl(
    argv: list[str], job: dict[str, Any], work: Path, *, check: bool = True
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run a CWL runner on a job; returns the process and its parsed output object."""
    work.mkdir(parents=True, exist_ok=True)
    job_file = work / "job.json"
    job_file.write_text(json.dumps(job))
    r = subprocess.run(
        [*argv, str(job_file)], cwd=work, capture_output=True, text=True,
        env=runner_env(work), check=False, timeout=900,
    )  # fmt: skip
    if check:
        assert r.returncode == 0, r.stderr[-5000:]
    out = json.loads(r.stdout) if r.returncode == 0 else {}
    return r, out


def cwltool(work: Path, package: Path, entry: str) -> list[str]:
    """`cwltool --no-container` on the package's local copy (its container relaxed to a hint)."""
    local = local_copy(package, work / "package")
    return [str(BIN / "cwltool"), "--no-container", "--outdir", str(work / "out"),
            "--tmpdir-prefix", f"{work}/tmp/", f"{local}#{entry}"]  # fmt: skip


def directory(path: Path) -> dict[str, str]:
    return {"class": "Directory", "location": path.as_uri()}


# Inputs a CWL package has and the OGC server has not, and why.
RUNNER_ONLY = {
    "eurosat-training": {
        "tracking_uri": "the server takes its MLflow store from pygeoapi-config.yml",
        "gpu": "the server picks its device itself; a CWL runner must know before scheduling",
    },
    "tile-classification": {
        "tracking_uri": "the server takes its MLflow store from pygeoapi-config.yml",
    },
    "water-bodies": {},
}
# Shared inputs whose cardinality differs on purpose: (CWL, server) as (required, array).
CARDINALITY = {
    ("eurosat-training", "stac"): ((True, False), (False, False)),  # server: bundled sample
    ("tile-classification", "product"): ((True, True), (False, False)),  # CWL: scatter
    ("water-bodies", "items"): ((True, True), (False, True)),  # server: bundled sample
}


def ogc_input_kind(schema: dict[str, Any]) -> tuple[str, bool]:
    """(JSON type, is array) of an OGC input schema; a CWL Directory is a string (its URI)."""
    if schema.get("type") == "array":
        return ogc_input_kind(schema["items"])[0], True
    if "oneOf" in schema:
        kinds = {ogc_input_kind(s)[0] for s in schema["oneOf"] if "$ref" not in s}
        assert len(kinds) == 1, schema
        return kinds.pop(), False
    return str(schema["type"]), False


def _converter(package: Path, entry: str) -> Any:
    from cwl2ogc import BaseCWLtypes2OGCConverter
    from cwl_utils.parser import load_document_by_uri

    return BaseCWLtypes2OGCConverter(load_document_by_uri(f"{package.as_uri()}#{entry}"))


def ogc_inputs(package: Path, entry: str) -> dict[str, Any]:
    """The OGC process inputs an ADES derives from a package's workflow (cwl2ogc)."""
    return dict(_converter(package, entry).get_inputs())


def ogc_outputs(package: Path, entry: str) -> dict[str, Any]:
    """The OGC process outputs an ADES derives from a package's workflow (cwl2ogc)."""
    return dict(_converter(package, entry).get_outputs())


def assert_inputs_match_the_server(entry: str, cwl: dict[str, Any], server: dict[str, Any]) -> None:
    """Each server input has a cwl2ogc input of the same JSON kind and the same cardinality
    (but for the differences on purpose, `CARDINALITY`)."""
    for name, desc in server.items():
        ours = cwl[name]
        cwl_kind, server_kind = ogc_input_kind(ours["schema"]), ogc_input_kind(desc["schema"])
        assert cwl_kind[0] == server_kind[0], (name, ours["schema"], desc["schema"])
        cwl_card = (ours["minOccurs"] == 1, cwl_kind[1])
        server_card = (desc["minOccurs"] >= 1, server_kind[1] or desc["maxOccurs"] != 1)
        expected = CARDINALITY.get((entry, name), (server_card, server_card))
        assert (cwl_card, server_card) == expected, name
