"""The output of training as STAC: a catalog with one item describing the model (STAC MLM).

`model_item` and `catalog_dict` are pure (they return dicts); `write_catalog` writes them next to
the asset files that `app_package.training.train.train` put in the item folder, with each file's
size and sha256 multihash (file extension).

What the item claims, and why: `mlm:accelerator` is what *inference* needs (MLM's definition):
any amd64 or ARM64 CPU runs the model, through PyTorch or the ONNX file with ONNX Runtime, so
`amd64`, not constrained; the device that trained it is a hyperparameter (`training_device`).
Bands follow STAC 1.1 (`bands` with eo v2 fields), like the class maps.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app_package.eo.bands import BANDS_BY_NAME, EUROSAT_CLASSES
from app_package.model.onnx import ONNX_ARTIFACT_TYPE, ONNX_MEDIA_TYPE, ONNX_OPSET
from app_package.model.spec import ONNX_FILE, SPEC_FILE, WEIGHTS_FILE, ModelSpec

STAC_VERSION = "1.1.0"
MLM_EXTENSION = "https://stac-extensions.github.io/mlm/v1.5.2/schema.json"
EO_EXTENSION = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
METRICS_FILE = "metrics.json"
CONFUSION_PNG = "confusion_matrix.png"
ARCHITECTURE_NAMES = {"smallcnn": "SmallCNN (stride-2 stem CNN)", "resnet18": "ResNet-18"}
TORCH_MEDIA_TYPE = "application/octet-stream; application=pytorch"
# what inference needs (MLM: "the accelerator required to run the model"): any CPU
INFERENCE_ACCELERATOR = "amd64"
INFERENCE_ACCELERATOR_SUMMARY = (
    "any amd64 or ARM64 CPU (PyTorch, or ONNX Runtime with the ONNX file); a CUDA GPU is used "
    "where present but not needed"
)


@dataclass(frozen=True)
class ModelItemInfo:
    """What the item says about one trained model, beyond its ModelSpec."""

    item_id: str
    spec: ModelSpec
    hyperparameters: dict[str, Any]
    test_accuracy: float
    macro_f1: float
    total_parameters: int
    training_device: str  # torch device type that trained it ("cpu", "cuda"), not inference's
    framework_version: str
    run_id: str
    run_url: str
    model_uri: str
    training_source: str  # absolute path or URL of the training data's STAC reference
    batch_size: int = 64
    created: datetime | None = None
    training_chips: int | None = None
    # lon/lat bounding box of the training chips (the item's geometry), when known
    bbox: tuple[float, float, float, float] | None = None


def item_id(model_name: str, version: str) -> str:
    """A filesystem- and URL-safe, searchable (lowercase) id, e.g. `eurosat-classifier-v3`."""
    return re.sub(r"[^a-z0-9_-]+", "-", f"{model_name}-v{version}".lower()).strip("-")


def multihash_sha256(data: bytes) -> str:
    """The file extension's `file:checksum`: a multihash, sha2-256 (0x12), 32 bytes (0x20)."""
    return "1220" + hashlib.sha256(data).hexdigest()


def file_fields(path: Path) -> dict[str, Any]:
    """`file:size` and `file:checksum` of a file."""
    data = path.read_bytes()
    return {"file:size": len(data), "file:checksum": multihash_sha256(data)}


def bbox_of(bboxes: Iterable[Iterable[float]]) -> tuple[float, float, float, float] | None:
    """The lon/lat box around 2D boxes [w, s, e, n] (None when there are none)."""
    boxes = [tuple(float(v) for v in b) for b in bboxes]
    boxes = [b for b in boxes if len(b) == 4]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _media_type(href: str) -> str | None:
    if href.endswith(".json"):
        return "application/json"
    if href.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    return None


def model_item(
    info: ModelItemInfo, files: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The STAC item (MLM v1.5.2, STAC 1.1 `bands`) with relative asset hrefs in its folder.

    `files`: the `file:size`/`file:checksum` of each asset file, by file name (`file_fields`).
    """
    files = files or {}
    spec = info.spec
    n_bands = len(spec.bands)
    created = (info.created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    classes_by_name = {c.name: c for c in EUROSAT_CLASSES}
    classes = []
    for value, name in enumerate(spec.classes):
        c = classes_by_name.get(name)
        entry: dict[str, Any] = {"value": value, "name": name}
        if c is not None:
            entry["description"] = c.title
            entry["color_hint"] = c.color_hex
        classes.append(entry)
    hyper = {k: v for k, v in info.hyperparameters.items() if v is not None}
    if spec.extra:  # how the network's head is built (SmallCNN: pooling, chip statistics)
        hyper["head"] = dict(spec.extra)
    bands = [
        {
            "name": b,
            "eo:common_name": BANDS_BY_NAME[b].common_name,
            "eo:center_wavelength": BANDS_BY_NAME[b].center_wavelength_um,
            "eo:full_width_half_max": BANDS_BY_NAME[b].full_width_half_max_um,
        }
        for b in spec.bands
    ]
    hyper["training_device"] = info.training_device

    def asset_file(name: str) -> dict[str, Any]:
        return {"href": f"./{name}", **files.get(name, {})}

    chips = f"{info.training_chips} " if info.training_chips else ""
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [MLM_EXTENSION, EO_EXTENSION] + ([FILE_EXTENSION] if files else []),
        "id": info.item_id,
        "geometry": None,
        "properties": {
            "datetime": created,
            "title": f"EuroSAT land-cover classifier ({spec.arch}, {n_bands} bands)",
            "description": (
                f"{ARCHITECTURE_NAMES.get(spec.arch, spec.arch)} trained on {chips}EuroSAT-MS "
                f"chips (the derived_from link); test accuracy {info.test_accuracy:.4f}, "
                f"macro F1 {info.macro_f1:.4f}. Registered in MLflow as {info.model_uri}. "
                "Weights as a PyTorch state_dict and as ONNX."
            ),
            "mlm:name": info.item_id,
            "mlm:architecture": ARCHITECTURE_NAMES.get(spec.arch, spec.arch),
            "mlm:tasks": ["classification", "scene-classification"],
            "mlm:framework": "PyTorch",
            "mlm:framework_version": info.framework_version,
            "mlm:total_parameters": int(info.total_parameters),
            "mlm:pretrained": False,
            "mlm:batch_size_suggestion": int(info.batch_size),
            "mlm:accelerator": INFERENCE_ACCELERATOR,
            "mlm:accelerator_constrained": False,
            "mlm:accelerator_summary": INFERENCE_ACCELERATOR_SUMMARY,
            "mlm:hyperparameters": hyper,
            "mlm:input": [
                {
                    "name": "Sentinel-2 L1C chips",
                    "description": (
                        "L1C digital numbers without the processing-baseline-04.00 offset "
                        f"(EuroSAT scale), {spec.chip_size}×{spec.chip_size} px, bands in this "
                        "order, each standardised with its EuroSAT mean and standard deviation"
                    ),
                    "bands": list(spec.bands),
                    "input": {
                        "shape": [-1, n_bands, spec.chip_size, spec.chip_size],
                        "dim_order": ["batch", "bands", "height", "width"],
                        "data_type": "float32",
                    },
                    "value_scaling": [
                        {"type": "z-score", "mean": m, "stddev": s}
                        for m, s in zip(spec.mean, spec.std, strict=True)
                    ],
                    "resize_type": None,
                    "pre_processing_function": None,
                }
            ],
            "mlm:output": [
                {
                    "name": "land-cover class scores",
                    "description": "one logit per EuroSAT class; argmax is the predicted class",
                    "tasks": ["classification", "scene-classification"],
                    "result": {
                        "shape": [-1, len(spec.classes)],
                        "dim_order": ["batch", "class"],
                        "data_type": "float32",
                    },
                    "classification:classes": classes,
                    "post_processing_function": None,
                }
            ],
            # STAC 1.1 allows item-level `bands` only when an asset has them: the model's input
            "bands": bands,
            "mlflow:run_id": info.run_id,
            "mlflow:model_uri": info.model_uri,
        },
        "links": [
            {
                "rel": "root",
                "href": "../catalog.json",
                "type": "application/json",
                "title": "Trained model",
            },
            {
                "rel": "parent",
                "href": "../catalog.json",
                "type": "application/json",
                "title": "Trained model",
            },
            {"rel": "via", "href": info.run_url, "title": f"MLflow run {info.run_id}"},
            {
                "rel": "derived_from",
                "href": info.training_source,
                "title": f"Training data (STAC): {info.training_source}",
                **(
                    {"type": media}
                    if (media := _media_type(info.training_source)) is not None
                    else {}
                ),
            },
        ],
        "assets": {
            "model": {
                **asset_file(WEIGHTS_FILE),
                "type": TORCH_MEDIA_TYPE,
                "title": "PyTorch state_dict (torch.load(..., weights_only=True))",
                "roles": ["mlm:model", "mlm:weights", "data"],
                "mlm:artifact_type": "torch.save",
                "bands": bands,
            },
            "model-onnx": {
                **asset_file(ONNX_FILE),
                "type": ONNX_MEDIA_TYPE,
                "title": (
                    f"ONNX (opset {ONNX_OPSET}, float32, any batch size): standardised chips "
                    "[N, bands, H, W] in, logits [N, classes] out; runs with ONNX Runtime"
                ),
                "roles": ["mlm:model", "mlm:weights", "data"],
                "mlm:artifact_type": ONNX_ARTIFACT_TYPE,
                "bands": bands,
            },
            "model-spec": {
                **asset_file(SPEC_FILE),
                "type": "application/json",
                "title": "ModelSpec: bands, normalisation, classes (app_package.model.spec)",
                "roles": ["metadata"],
            },
            "metrics": {
                **asset_file(METRICS_FILE),
                "type": "application/json",
                "title": "Test metrics: accuracy, macro F1, per-class P/R/F1, confusion matrix",
                "roles": ["metadata"],
            },
            "confusion-matrix": {
                **asset_file(CONFUSION_PNG),
                "type": "image/png",
                "title": "Confusion matrix on the test split",
                "roles": ["overview", "visual"],
            },
        },
    }
    if info.bbox is not None:  # where the training chips lie
        w, s, e, n = info.bbox
        item["bbox"] = [w, s, e, n]
        item["geometry"] = {
            "type": "Polygon",
            "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
        }
    return item


def catalog_dict(item_ids: list[str]) -> dict[str, Any]:
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "trained-model",
        "description": "A trained EuroSAT land-cover classifier described with STAC MLM",
        "links": [
            {
                "rel": "root",
                "href": "./catalog.json",
                "type": "application/json",
                "title": "Trained model",
            }
        ]
        + [
            {
                "rel": "item",
                "href": f"./{i}/{i}.json",
                "type": "application/geo+json",
                "title": f"Model {i} (STAC MLM)",
            }
            for i in item_ids
        ],
    }


ASSET_FILES = (WEIGHTS_FILE, ONNX_FILE, SPEC_FILE, METRICS_FILE, CONFUSION_PNG)


def write_catalog(folder: Path, info: ModelItemInfo) -> Path:
    """Write `folder/catalog.json` and `folder/<id>/<id>.json` (with the size and checksum of
    each asset file present in `folder/<id>/`); returns the catalog path."""
    item_dir = folder / info.item_id
    item_dir.mkdir(parents=True, exist_ok=True)
    files = {n: file_fields(item_dir / n) for n in ASSET_FILES if (item_dir / n).is_file()}
    item = model_item(info, files)
    (item_dir / f"{info.item_id}.json").write_text(json.dumps(item, indent=2) + "\n")
    catalog = folder / "catalog.json"
    catalog.write_text(json.dumps(catalog_dict([info.item_id]), indent=2))
    return catalog
