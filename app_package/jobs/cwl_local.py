"""Local copies of the CWL packages: the container relaxed from a requirement to a hint.

The packages state `DockerRequirement` under `requirements`, as an ADES wants it (a platform must
run each tool in the image). `cwltool --no-container` and `toil-cwl-runner --no-container` refuse a
required container, so local runs (the server's CWL engine, the tests, `app-package cwl-local`)
run a copy made here, in which each `DockerRequirement` is moved to `hints`; nothing else changes.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from app_package.errors import InputError

CONTAINER = "DockerRequirement"


def _as_mapping(section: Any) -> dict[str, Any]:
    """`requirements`/`hints` as {class: body} (CWL allows a list of {class: …} too)."""
    if isinstance(section, list):
        return {r["class"]: {k: v for k, v in r.items() if k != "class"} for r in section}
    return dict(section or {})


def relax_process(process: dict[str, Any]) -> dict[str, Any]:
    """One process with its required container moved to its hints."""
    requirements = _as_mapping(process.get("requirements"))
    if CONTAINER not in requirements:
        return process
    out = dict(process)
    hints = _as_mapping(process.get("hints"))
    hints[CONTAINER] = requirements.pop(CONTAINER)
    out["requirements"] = requirements
    out["hints"] = hints
    return out


def relax(document: dict[str, Any]) -> dict[str, Any]:
    """A package document with every process's `DockerRequirement` a hint instead."""
    doc = copy.deepcopy(document)
    if "$graph" in doc:
        doc["$graph"] = [relax_process(p) for p in doc["$graph"]]
        return doc
    return relax_process(doc)


def local_copy(package: Path, dest_dir: Path) -> Path:
    """Write the relaxed copy of `package` into `dest_dir` (same file name); its path."""
    import yaml

    if not package.is_file():
        raise InputError(f"{package}: no such CWL package")
    doc = yaml.safe_load(package.read_text())
    if not isinstance(doc, dict) or "cwlVersion" not in doc:
        raise InputError(f"{package}: not a CWL document")
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / package.name
    out.write_text(yaml.safe_dump(relax(doc), sort_keys=False))
    return out
