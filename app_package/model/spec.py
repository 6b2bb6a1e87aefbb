"""What a saved model is, as plain data: architecture, input bands in order, normalisation,
classes (`ModelSpec`), and the file names of the local format.

No torch here: inference reads the spec to plan its reads while torch is still being imported.
Inference takes bands, their order, normalisation and classes from the spec, never from constants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from app_package.eo.bands import EUROSAT_CHIP_SIZE, EUROSAT_CLASS_NAMES, EUROSAT_MEAN, EUROSAT_STD
from app_package.errors import InputError, ModelError

ARCHITECTURES: tuple[str, ...] = ("smallcnn", "resnet18")
DEFAULT_ARCH = "smallcnn"
# SmallCNN's head for new models, kept in `ModelSpec.extra` so that a saved model is rebuilt the
# way it was trained: models saved before a key existed get its old behaviour (no "pool": the
# average-pooled head; no "chip_stats": no statistics term).
#   pool "meanstd": per-channel mean and standard deviation of the last feature map (not only the
#     mean), so the head sees how much each feature varies over the chip.
#   chip_stats: a linear term on statistics of the input chip's central half (per band: mean,
#     standard deviation, standard deviation within 2×2 pixel blocks = texture; `model.chip_stats`),
#     standardised, added to the logits and trained at CHIP_STATS_LR_MULT × the learning rate: a
#     linear model on standardised features needs weights of order 1, which Adam's steps of 1e-3
#     do not reach in the ~100 steps a small dataset gives (that term alone: 0.50 accuracy at 1×).
#   Measured on the 270 real chips, 5-fold CV, seeds 0 / 1 / 2 (bench/results/train_cv_recipe.json):
#   0.785 / 0.778 / 0.789 against 0.763 for the spectral baseline; the CNN without chip_stats
#   0.707 / 0.737 (seeds 0 / 1); the learning-rate multiplier 10× 0.763 / 0.774 / 0.785 and 100×
#   0.763 / 0.759 / 0.789 (whole-chip statistics with neighbour-difference texture; 30×: 0.800 /
#   0.782 / 0.807, kept to the central half for inference speed, see `model.chip_stats`).
SMALLCNN_POOLINGS: tuple[str, ...] = ("avg", "meanstd")
SMALLCNN_HEAD: dict[str, Any] = {"pool": "meanstd", "chip_stats": True}
CHIP_STATS_LR_MULT = 30.0
# SmallCNN's feature map has one cell per this many input pixels (its stem, second and fourth
# layers have stride 2): window features need strides and chip sizes divisible by it
SMALLCNN_FEATURE_STRIDE = 8


@dataclass(frozen=True)
class ModelSpec:
    """What a model expects as input and what it outputs: everything inference needs."""

    arch: str
    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] = EUROSAT_CLASS_NAMES
    chip_size: int = EUROSAT_CHIP_SIZE
    # DN scale the model was trained on: L1C DNs without the baseline-04.00 offset (EuroSAT's).
    radiometric_offset_applied: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_bands(cls, arch: str, bands: tuple[str, ...]) -> ModelSpec:
        """A spec with EuroSAT statistics looked up by band name."""
        if arch not in ARCHITECTURES:
            raise InputError(
                f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}"
            )
        return cls(
            arch=arch,
            bands=tuple(bands),
            mean=tuple(EUROSAT_MEAN[b] for b in bands),
            std=tuple(EUROSAT_STD[b] for b in bands),
            extra=dict(SMALLCNN_HEAD) if arch == "smallcnn" else {},
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("bands", "mean", "std", "classes"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        try:
            return cls(
                arch=str(d["arch"]),
                bands=tuple(d["bands"]),
                mean=tuple(float(v) for v in d["mean"]),
                std=tuple(float(v) for v in d["std"]),
                classes=tuple(d.get("classes", EUROSAT_CLASS_NAMES)),
                chip_size=int(d.get("chip_size", EUROSAT_CHIP_SIZE)),
                radiometric_offset_applied=bool(d.get("radiometric_offset_applied", True)),
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"model metadata is incomplete or malformed ({e!r}): {d}") from e


# ---- portable local format: a folder with weights (state_dict) and spec JSON ----
WEIGHTS_FILE = "model.pt"
SPEC_FILE = "model.json"
ONNX_FILE = "model.onnx"  # the same network exported to ONNX (`app_package.model.onnx`)
