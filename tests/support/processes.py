"""A small test process: sleeps N steps reporting progress, then writes a STAC catalog.

Defined only in tests/server-config.yml; it exercises the job machinery without training a model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from app_package.errors import InputError
from app_package.jobs.processor import JobProcessor
from app_package.util.outputs import atomic_dir
from app_package.util.progress import ProgressCallback

PROCESS_METADATA: dict[str, Any] = {
    "version": "0.1.0",
    "id": "sleep",
    "title": {"en": "Sleep"},
    "description": {"en": "Sleeps `steps` × `seconds`, reporting progress; writes a STAC catalog."},
    "jobControlOptions": ["async-execute", "sync-execute"],
    "outputTransmission": ["value", "reference"],
    "keywords": ["test"],
    "links": [],
    "inputs": {
        "steps": {
            "title": "Steps",
            "description": "Number of steps.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "seconds": {
            "title": "Seconds per step",
            "description": "Sleep per step.",
            "schema": {"type": "number", "minimum": 0, "maximum": 60},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "fail": {
            "title": "Fail with",
            "description": "Fail at the end with this message (an InputError).",
            "schema": {"type": "string"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "data": {
            "title": "Data",
            "description": "A reference the job would read (checked by the href policy).",
            "schema": {"type": "string", "format": "uri-reference"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "tags": {
            "title": "Tags",
            "description": "Up to 3 words.",
            "schema": {"type": "string"},
            "minOccurs": 0,
            "maxOccurs": 3,
        },
    },
    "outputs": {
        "catalog": {
            "title": "Catalog",
            "description": "A STAC catalog with one item and one asset.",
            "schema": {"type": "object", "contentMediaType": "application/json"},
        }
    },
    "example": {"inputs": {"steps": 2, "seconds": 0.1}},
}


class SleepProcessor(JobProcessor):
    def __init__(self, processor_def: dict[str, Any]) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict[str, Any], output: Path, progress: ProgressCallback) -> Path:
        steps, seconds = int(inputs["steps"]), float(inputs.get("seconds", 0.0))
        with atomic_dir(output) as tmp:
            (tmp / "partial.txt").write_text("work in progress\n")
            for i in range(steps):
                time.sleep(seconds)
                progress(100.0 * (i + 1) / steps, f"step {i + 1}/{steps}")
            if "fail" in inputs:
                raise InputError(inputs["fail"])
            (tmp / "data.txt").write_text("hello\n")
            item = {
                "type": "Feature",
                "stac_version": "1.1.0",
                "id": "result",
                "geometry": None,
                "properties": {"datetime": "2026-01-01T00:00:00Z", "steps": steps},
                "links": [{"rel": "root", "href": "../catalog.json"},
                          {"rel": "parent", "href": "../catalog.json"}],
                "assets": {"data": {"href": "./data.txt", "type": "text/plain"}},
            }  # fmt: skip
            (tmp / "result").mkdir()
            (tmp / "result" / "data.txt").write_text("hello\n")
            (tmp / "result" / "result.json").write_text(json.dumps(item))
            catalog = {
                "type": "Catalog",
                "stac_version": "1.1.0",
                "id": "sleep",
                "description": "sleep output",
                "links": [{"rel": "root", "href": "./catalog.json"},
                          {"rel": "item", "href": "./result/result.json"}],
            }  # fmt: skip
            (tmp / "catalog.json").write_text(json.dumps(catalog))
        return output / "catalog.json"
