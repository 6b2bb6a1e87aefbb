"""The job manager's settings (`server.manager` in pygeoapi-config.yml), parsed once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app_package.defaults import SAMPLE_DIR
from app_package.jobs.cwl_engine import check_batch_system, check_engine
from app_package.service.hrefs import HrefPolicy

DEFAULT_MAX_JOBS = 2
SYNC_WAIT_S = 60.0  # the longest a synchronous execute request is held open
MIN_FREE_DISK_BYTES = 1 << 30  # /health warns below this much free space for job outputs
STALE_AFTER_S = 30.0  # a worker on another host is gone after this long without a heartbeat
# how many times a job interrupted by a crash (its server worker or its own process killed) is
# queued again before it is failed; a training resumes from its last completed epoch
DEFAULT_REQUEUE = 1


@dataclass(frozen=True)
class ManagerConfig:
    """Where jobs are stored and written, how many run, how, and what they may read."""

    data_dir: Path
    connection: str  # postgresql://… or the path of the single-host store file
    output_dir: Path
    work_dir: Path  # each job's own folder of what survives an interruption (checkpoints)
    outputs_url: str  # the URL of `output_dir` on the server (no trailing slash)
    max_jobs: int  # jobs running at once over all workers
    heartbeat_timeout: float
    engine: str  # local, cwltool or toil
    toil_batch_system: str  # where Toil runs a package's steps: single_machine or slurm
    sync_wait_s: float  # longer than this, a synchronous request is answered as async (201)
    min_free_disk: int  # bytes free in the output folder below which /health warns
    default_model: bool  # register the shipped model on an empty registry at start-up
    requeue: int  # times an interrupted job is queued again before it fails (0: fail at once)
    # references (inputs, callbacks) jobs may use; data roots default to the sample + outputs
    href_policy: HrefPolicy

    @classmethod
    def parse(cls, manager_def: dict[str, Any]) -> ManagerConfig:
        data_dir = Path(str(manager_def.get("data_dir") or "var"))
        connection = str(manager_def.get("connection") or "") or str(data_dir / "jobs.db")
        output_dir = Path(str(manager_def.get("output_dir") or data_dir / "outputs")).resolve()
        defaults = {"the bundled sample": SAMPLE_DIR, "the job outputs": output_dir}
        return cls(
            data_dir=data_dir,
            connection=connection,
            output_dir=output_dir,
            work_dir=Path(str(manager_def.get("work_dir") or data_dir / "work")).resolve(),
            outputs_url=str(manager_def.get("outputs_url", "")).rstrip("/"),
            max_jobs=max(1, int(manager_def.get("max_jobs", DEFAULT_MAX_JOBS))),
            heartbeat_timeout=float(manager_def.get("heartbeat_timeout") or STALE_AFTER_S),
            engine=check_engine(str(manager_def.get("engine") or "local")),
            toil_batch_system=check_batch_system(
                str(manager_def.get("toil_batch_system") or "single_machine")
            ),
            sync_wait_s=float(manager_def.get("sync_wait") or SYNC_WAIT_S),
            min_free_disk=int(manager_def.get("min_free_disk") or MIN_FREE_DISK_BYTES),
            default_model=str(manager_def.get("default_model", True)).lower()
            in ("true", "1", "yes"),
            requeue=max(0, _count(manager_def.get("requeue"), DEFAULT_REQUEUE)),
            href_policy=HrefPolicy.from_config(manager_def, defaults),
        )


def _count(value: object, default: int) -> int:
    """A YAML integer, or the text of one from an environment variable (empty: `default`)."""
    text = "" if value is None else str(value).strip()
    return int(text) if text else default


def _flag(value: object) -> bool:
    """A YAML boolean, or the text of one from an environment variable."""
    return str(value).strip().lower() in ("true", "1", "yes", "on")
