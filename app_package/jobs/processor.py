"""The base of the pygeoapi processes whose jobs write a STAC catalog into an output folder."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError

from app_package.errors import AppPackageError
from app_package.util.progress import ProgressCallback


def tracking_uri(processor_def: dict[str, Any]) -> str:
    """The MLflow store of a processor: its `tracking_uri`, else sqlite in its `data_dir`."""
    uri = processor_def.get("tracking_uri")
    if uri:
        return str(uri)
    data_dir = Path(str(processor_def.get("data_dir") or "var")).resolve()
    return f"sqlite:///{data_dir / 'mlflow.db'}"


class JobProcessor(BaseProcessor):
    """A processor whose work writes a STAC catalog into an output folder, reporting progress."""

    def run(self, inputs: dict[str, Any], output: Path, progress: ProgressCallback) -> Path:
        """Do the work; write `output` (which must not exist yet); return its catalog.json."""
        raise NotImplementedError

    def run_resumable(
        self, inputs: dict[str, Any], output: Path, progress: ProgressCallback, workdir: Path
    ) -> Path:
        """`run` for a job that may be interrupted and queued again: what would let a later
        run of the same job resume (a checkpoint) goes into `workdir`, which survives the
        interruption and is removed once the job finishes. By default nothing is kept: the
        work restarts from scratch."""
        return self.run(inputs, output, progress)

    def execute(self, data: dict[str, Any], outputs: dict[str, Any] | None = None) -> Any:
        """Stock pygeoapi entry point (in-process): run into a temporary folder."""
        tmp = Path(tempfile.mkdtemp(prefix="app-package-"))
        try:
            catalog = self.run(data, tmp / "output", lambda p, m: None)
        except AppPackageError as e:
            raise ProcessorExecuteError(str(e)) from e
        return "application/json", json.loads(catalog.read_text())
