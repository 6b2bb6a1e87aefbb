"""The CWL engine's pure parts: the job order built from process inputs, and step progress read
from the runners' logs."""

from __future__ import annotations

import pytest


def test_cwl_job_order_and_step_progress_parsing() -> None:
    from app_package.errors import InputError
    from app_package.jobs.cwl_engine import check_engine, job_order, step_event

    types = {"product": "Directory[]", "model": "string", "stride": "int?",
             "tracking_uri": "string?"}  # fmt: skip
    staged = []

    def stage(name: str, href: str) -> dict[str, str]:
        staged.append((name, href))
        return {"class": "Directory", "location": f"file:///staged/{name}"}

    order = job_order(types, {"product": "/p/item.json", "model": "m", "batch_size": 8},
                      {"tracking_uri": "http://mlflow:5000"}, stage)  # fmt: skip
    assert order == {"product": [{"class": "Directory", "location": "file:///staged/product-0"}],
                     "model": "m", "tracking_uri": "http://mlflow:5000"}  # fmt: skip
    assert staged == [("product-0", "/p/item.json")]  # batch_size: not an input of the package
    with pytest.raises(InputError, match="model"):
        job_order(types, {"product": "/p"}, {}, stage)
    assert step_event("INFO [step classify] start") == ("start", "classify")
    assert step_event("INFO [step merge] completed success") == ("end", "merge")
    toil = ("[toil.leader] Issued job 'CWLJob' tile-classification.0.classify "
            "kind-CWLJob/instance-mh71doea v1 with job batch system ID: 2")  # fmt: skip
    assert step_event(toil) == ("start", "classify")
    assert step_event("classify:  50%|##  | 50%") is None
    with pytest.raises(InputError, match="APP_PACKAGE_ENGINE"):
        check_engine("calrissian")


def test_cwl_input_types_of_the_packages_in_short_form() -> None:
    """Optional inputs written as lists with "null" (inline enums) are optional too."""
    import yaml

    from app_package.jobs.cwl_engine import type_name, workflow_inputs
    from tests.conftest import REPO

    assert type_name(["null", {"type": "enum", "symbols": ["torch", "onnx"]}]) == "enum?"
    assert type_name({"type": "array", "items": "Directory"}) == "Directory[]"
    assert type_name(["null", "int"]) == "int?" and type_name("string?") == "string?"
    doc = yaml.safe_load((REPO / "cwl" / "tile-classification.cwl").read_text())
    types = workflow_inputs(doc, "tile-classification")
    assert types["runtime"] == "enum?" and types["product"] == "Directory[]"
    assert types["model"] == "string"


def test_toil_batch_system_and_the_slurm_comment_a_dismiss_finds() -> None:
    from pathlib import Path

    from app_package.errors import InputError
    from app_package.jobs.config import ManagerConfig
    from app_package.jobs.cwl_engine import (
        SLURM_COMMENT,
        check_batch_system,
        commented_jobs,
        runner_argv,
        slurm_env,
    )

    work = Path("/w")
    local = runner_argv("toil", Path("/p.cwl"), "x", work)
    slurm = runner_argv("toil", Path("/p.cwl"), "x", work, batch_system="slurm")
    assert local[local.index("--batchSystem") + 1] == "single_machine" and "--maxCores" in local
    assert slurm[slurm.index("--batchSystem") + 1] == "slurm" and "--maxCores" not in slurm
    assert slurm[-1] == "/p.cwl#x"
    with pytest.raises(InputError, match="APP_PACKAGE_TOIL_BATCH_SYSTEM"):
        check_batch_system("lsf")
    assert ManagerConfig.parse({}).toil_batch_system == "single_machine"
    assert ManagerConfig.parse({"toil_batch_system": "slurm"}).toil_batch_system == "slurm"

    comment = SLURM_COMMENT.format(job_id="j-1")
    assert slurm_env(comment, {}) == {"TOIL_SLURM_ARGS": "--comment=app-package-job:j-1"}
    assert slurm_env(comment, {"TOIL_SLURM_ARGS": "--account=eo "}) == {
        "TOIL_SLURM_ARGS": "--account=eo --comment=app-package-job:j-1"
    }
    squeue = "12 app-package-job:j-1\n13 app-package-job:j-10\n14 (null)\n15 app-package-job:j-1\n"
    assert commented_jobs(squeue, comment) == ["12", "15"]
