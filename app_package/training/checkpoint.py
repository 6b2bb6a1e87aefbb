"""A training run's checkpoint: the loop's state after its last completed epoch, the MLflow run
it logs to and a fingerprint of what it trains, in one file of a folder the caller owns (a job's
work folder). A run given that folder again resumes from it, continuing the same MLflow run.

The file is replaced atomically after every epoch (`util.outputs.atomic_file`): a crash leaves
the previous epoch's checkpoint or this one, never a torn file. It is read with
`torch.load(weights_only=True)`: plain containers and tensors only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from app_package.training.loop import EpochStats, LoopState
from app_package.util.outputs import atomic_file

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1  # bumped when the layout changes: an older file is then ignored, not misread


@dataclass(frozen=True)
class Checkpoint:
    """The loop's state, the MLflow run to continue and what the run trains."""

    state: LoopState
    run_id: str
    fingerprint: str


def fingerprint(params: dict[str, Any], data_digest: str) -> str:
    """What a checkpoint belongs to: every training setting and the chips' digest (a checkpoint
    of other settings or other data is never resumed)."""
    text = json.dumps({"params": params, "data": data_digest}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def checkpoint_path(folder: Path) -> Path:
    return Path(folder) / CHECKPOINT_FILE


def save_checkpoint(folder: Path, checkpoint: Checkpoint) -> Path:
    """Write (atomically replace) the checkpoint in `folder`; its path."""
    import torch

    state = checkpoint.state
    doc = {
        "format": FORMAT,
        "run_id": checkpoint.run_id,
        "fingerprint": checkpoint.fingerprint,
        **{f.name: getattr(state, f.name) for f in fields(LoopState)},  # tensors as they are
        "history": [asdict(s) for s in state.history],
    }
    path = checkpoint_path(folder)
    with atomic_file(path) as tmp:
        torch.save(doc, tmp)
    return path


def load_checkpoint(folder: Path, expected_fingerprint: str) -> Checkpoint | None:
    """The checkpoint in `folder`, or None when there is none, it cannot be read, or it belongs
    to other settings or data (then the run starts from scratch, and says why in the log)."""
    import torch

    path = checkpoint_path(folder)
    if not path.is_file():
        return None
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a file of another torch version, a disk error: start again
        logger.warning("checkpoint %s unreadable (%s): training starts from scratch", path, e)
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        logger.warning("checkpoint %s has another format: training starts from scratch", path)
        return None
    if doc.get("fingerprint") != expected_fingerprint:
        logger.warning(
            "checkpoint %s is of other settings or data: training starts from scratch", path
        )
        return None
    state = LoopState(**{f.name: doc[f.name] for f in fields(LoopState)})
    state.history = [EpochStats(**s) for s in doc["history"]]  # saved as plain dicts
    return Checkpoint(state, str(doc["run_id"]), str(doc["fingerprint"]))
