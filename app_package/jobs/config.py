"""The job manager's settings (`server.manager` in pygeoapi-config.yml), parsed once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app_package.defaults import SAMPLE_DIR
from app_package.jobs.cwl_engine import check_engine
from app_package.service.hrefs import HrefPolicy

DEFAULT_MAX_JOBS = 2
SYNC_WAIT_S = 60.0  # the longest a synchronous execute request is held open
MIN_FREE_DISK_BYTES = 1 << 30  # /health warns below this much free space for job outputs
STALE_AFTER_S = 30.0  # a worker on another host is gone after this long without a heartbeat


@dataclass(frozen=True)
class ManagerConfig:
    """Where jobs are stored and written, how many run, how, and what they may read."""

    data_dir: Path
    connection: str  # postgresql://… or the path of the single-host store file
    output_dir: Path
    outputs_url: str  # the URL of `output_dir` on the server (no trailing slash)
    max_jobs: int  # jobs running at once over all workers
    heartbeat_timeout: float
    engine: str  # local, cwltool or toil
    sync_wait_s: float  # longer than this, a synchronous request is answered as async (201)
    min_free_disk: int  # bytes free in the output folder below which /health warns
    default_model: bool  # register the shipped model on an empty registry at start-up
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
            outputs_url=str(manager_def.get("outputs_url", "")).rstrip("/"),
            max_jobs=max(1, int(manager_def.get("max_jobs", DEFAULT_MAX_JOBS))),
            heartbeat_timeout=float(manager_def.get("heartbeat_timeout") or STALE_AFTER_S),
            engine=check_engine(str(manager_def.get("engine") or "local")),
            sync_wait_s=float(manager_def.get("sync_wait") or SYNC_WAIT_S),
            min_free_disk=int(manager_def.get("min_free_disk") or MIN_FREE_DISK_BYTES),
            default_model=str(manager_def.get("default_model", True)).lower()
            in ("true", "1", "yes"),
            href_policy=HrefPolicy.from_config(manager_def, defaults),
        )


def _flag(value: object) -> bool:
    """A YAML boolean, or the text of one from an environment variable."""
    return str(value).strip().lower() in ("true", "1", "yes", "on")
