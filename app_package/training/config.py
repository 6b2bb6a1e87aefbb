"""A training run's settings: one typed record that the CLI options, the OGC process inputs and
the CWL inputs all map onto, checked before any work.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from app_package.defaults import MODEL_NAME
from app_package.eo.bands import DEFAULT_MODEL_BANDS, parse_bands
from app_package.errors import InputError
from app_package.model.spec import ARCHITECTURES

logger = logging.getLogger(__name__)

OPTIMIZERS: tuple[str, ...] = ("adamw", "adam", "sgd")
LR_SCHEDULES: tuple[str, ...] = ("cosine", "step", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Every input of a training run; each one has an effect (tests/training/test_training.py
    proves it)."""

    stac: str
    output: Path
    bands: tuple[str, ...] | None = None  # None = DEFAULT_MODEL_BANDS (the 12 without B10)
    arch: str = "smallcnn"
    epochs: int = 30  # an upper bound: early stopping (patience) picks the count
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    patience: int = 5  # epochs without val-loss improvement before stopping; 0 = never stop early
    # after early stopping: retrain from the same initial weights on train + validation chips for
    # the best epoch count, so the final model also learns from the validation chips
    refit: bool = True
    samples_per_class: int | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str = "eurosat"
    model_name: str = MODEL_NAME
    augment: bool = True  # random flips and 90° rotations of training chips
    # strength of random radiometric shifts of training chips (brightness, per-band gains, haze
    # and its removal: `training.radiometry`); 0 = off
    radiometric: float = 1.0
    amp: bool = True  # bf16 autocast (CPU with AVX512-BF16/AMX, CUDA)
    channels_last: bool = True

    def resolved_bands(self) -> tuple[str, ...]:
        return DEFAULT_MODEL_BANDS if self.bands is None else parse_bands(self.bands)

    def params(self) -> dict[str, Any]:
        """Hyperparameters and inputs as flat, loggable values."""
        d = asdict(self)
        d["output"] = str(self.output)
        d["bands"] = ",".join(self.resolved_bands())
        return d


def validate_config(config: TrainConfig) -> TrainConfig:
    """Check every option before anything is loaded or trained; returns the canonical config."""
    bands = config.resolved_bands()
    if config.arch not in ARCHITECTURES:
        raise InputError(
            f"unknown architecture {config.arch!r}: choose one of {', '.join(ARCHITECTURES)}"
        )
    if config.epochs <= 0:
        raise InputError(f"epochs must be at least 1 (got {config.epochs})")
    if config.batch_size <= 0:
        raise InputError(f"batch size must be at least 1 (got {config.batch_size})")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise InputError(f"learning rate must be a positive number (got {config.lr})")
    if not (config.weight_decay >= 0 and math.isfinite(config.weight_decay)):
        raise InputError(f"weight decay must be zero or positive (got {config.weight_decay})")
    if config.optimizer not in OPTIMIZERS:
        raise InputError(
            f"unknown optimizer {config.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
        )
    if config.lr_schedule not in LR_SCHEDULES:
        raise InputError(
            f"unknown LR schedule {config.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}"
        )
    if not (0 <= config.radiometric <= 3 and math.isfinite(config.radiometric)):
        raise InputError(
            f"radiometric augmentation strength must lie between 0 (off) and 3 "
            f"(got {config.radiometric}); 1 spans what real products show",
            field="radiometric",
        )
    if config.patience < 0:
        raise InputError(f"patience must be 0 (off) or more epochs (got {config.patience})")
    if config.samples_per_class is not None and config.samples_per_class < 3:
        raise InputError(
            f"samples per class must be at least 3 (train, validation, test; "
            f"got {config.samples_per_class})"
        )
    for name, v in (("val", config.val_fraction), ("test", config.test_fraction)):
        if not 0 < v < 1:
            raise InputError(f"{name} fraction must lie strictly between 0 and 1 (got {v})")
    if config.val_fraction + config.test_fraction >= 1:
        raise InputError(
            f"val fraction + test fraction must be below 1 "
            f"(got {config.val_fraction} + {config.test_fraction}): nothing would be left to train"
        )
    if not config.stac.strip():
        raise InputError(
            "no training data given: set stac to a STAC catalog or collection (path or URL)",
            field="stac",
        )
    if not config.experiment.strip():
        raise InputError("experiment name is empty: name an MLflow experiment", field="experiment")
    if not config.model_name.strip():
        raise InputError(
            "registered model name is empty: name the model to register", field="model_name"
        )
    from app_package.model.networks import resolve_device

    resolve_device(config.device)
    return replace(config, bands=bands, output=Path(config.output))
