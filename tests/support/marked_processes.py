"""The `sleep` test process, leaving a run marker: proof that no job runs twice.

Each run first creates `$APP_PACKAGE_RUN_MARKERS/<job id>.<pid>` (the job id is the name of its
output folder), so counting markers per job counts its runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app_package.util.progress import ProgressCallback
from tests.support.processes import SleepProcessor


class MarkedSleepProcessor(SleepProcessor):
    def run(self, inputs: dict[str, Any], output: Path, progress: ProgressCallback) -> Path:
        markers = os.environ.get("APP_PACKAGE_RUN_MARKERS")
        if markers:
            (Path(markers) / f"{output.name}.{os.getpid()}").touch()
        return super().run(inputs, output, progress)
