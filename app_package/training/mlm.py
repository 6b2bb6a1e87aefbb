"""The output of training as STAC: a catalog with one item describing the model (STAC MLM).

`model_item` and `catalog_dict` are pure (they return dicts); `write_catalog` writes them next to
the asset files that `app_package.training.train.train` put in the item folder.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app_package.eo.bands import BANDS_BY_NAME, EUROSAT_CLASSES
from app_package.model.spec import SPEC_FILE, WEIGHTS_FILE, ModelSpec

STAC_VERSION = "1.1.0"
MLM_EXTENSION = "https://stac-extensions.github.io/mlm/v1.5.2/schema.json"
EO_EXTENSION = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
METRICS_FILE = "metrics.json"
CONFUSION_PNG = "confusion_matrix.png"
ARCHITECTURE_NAMES = {"smallcnn": "SmallCNN (stride-2 stem CNN)", "resnet18": "ResNet-18"}


@dataclass(frozen=True)
class ModelItemInfo:
    """What the item says about one trained model, beyond its ModelSpec."""

    item_id: str
    spec: ModelSpec
    hyperparameters: dict[str, Any]
    test_accuracy: float
    macro_f1: float
    total_parameters: int
    accelerator: str  # torch device type used for training: "cpu" or "cuda"
    framework_version: str
    run_id: str
    run_url: str
    model_uri: str
    training_source: str
    batch_size: int = 64
    created: datetime | None = None


def item_id(model_name: str, version: str) -> str:
    """A filesystem- and URL-safe id, e.g. `eurosat-classifier-v3`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{model_name}-v{version}").strip("-")


def _accelerator(device_type: str) -> str:
    if device_type == "cuda":
        return "cuda"
    return "macos-arm" if platform.machine().lower() in ("arm64", "aarch64") else "amd64"


def model_item(info: ModelItemInfo) -> dict[str, Any]:
    """The STAC item (MLM v1.5.2, STAC 1.1 `bands`) with relative asset hrefs in its folder."""
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
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [MLM_EXTENSION, EO_EXTENSION],
        "id": info.item_id,
        "geometry": None,
        "properties": {
            "datetime": created,
            "title": f"EuroSAT land-cover classifier ({spec.arch}, {n_bands} bands)",
            "description": (
                f"{ARCHITECTURE_NAMES.get(spec.arch, spec.arch)} trained on EuroSAT-MS chips "
                f"from {info.training_source}; test accuracy {info.test_accuracy:.4f}, "
                f"macro F1 {info.macro_f1:.4f}. Registered in MLflow as {info.model_uri}."
            ),
            "mlm:name": info.item_id,
            "mlm:architecture": ARCHITECTURE_NAMES.get(spec.arch, spec.arch),
            "mlm:tasks": ["classification", "scene-classification"],
            "mlm:framework": "PyTorch",
            "mlm:framework_version": info.framework_version,
            "mlm:total_parameters": int(info.total_parameters),
            "mlm:pretrained": False,
            "mlm:pretrained_source": None,
            "mlm:batch_size_suggestion": int(info.batch_size),
            "mlm:accelerator": _accelerator(info.accelerator),
            "mlm:accelerator_constrained": False,
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
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            {"rel": "via", "href": info.run_url, "title": f"MLflow run {info.run_id}"},
        ],
        "assets": {
            "model": {
                "href": f"./{WEIGHTS_FILE}",
                "type": "application/octet-stream; application=pytorch",
                "title": "PyTorch state_dict (torch.load(..., weights_only=True))",
                "roles": ["mlm:model", "data"],
                "mlm:artifact_type": "torch.save",
                "bands": bands,
            },
            "model-spec": {
                "href": f"./{SPEC_FILE}",
                "type": "application/json",
                "title": "ModelSpec: bands, normalisation, classes (app_package.model.networks)",
                "roles": ["metadata"],
            },
            "metrics": {
                "href": f"./{METRICS_FILE}",
                "type": "application/json",
                "title": "Test metrics: accuracy, macro F1, per-class P/R/F1, confusion matrix",
                "roles": ["metadata"],
            },
            "confusion-matrix": {
                "href": f"./{CONFUSION_PNG}",
                "type": "image/png",
                "title": "Confusion matrix on the test split",
                "roles": ["overview", "visual"],
            },
        },
    }


def catalog_dict(item_ids: list[str]) -> dict[str, Any]:
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "trained-model",
        "description": "A trained EuroSAT land-cover classifier described with STAC MLM",
        "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
        + [
            {"rel": "item", "href": f"./{i}/{i}.json", "type": "application/geo+json"}
            for i in item_ids
        ],
    }


def write_catalog(folder: Path, info: ModelItemInfo) -> Path:
    """Write `folder/catalog.json` and `folder/<id>/<id>.json`; returns the catalog path."""
    item_dir = folder / info.item_id
    item_dir.mkdir(parents=True, exist_ok=True)
    (item_dir / f"{info.item_id}.json").write_text(json.dumps(model_item(info), indent=2))
    catalog = folder / "catalog.json"
    catalog.write_text(json.dumps(catalog_dict([info.item_id]), indent=2))
    return catalog
