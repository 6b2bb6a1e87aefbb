"""`tile-classification`: classify a Sentinel-2 L1C or L2A product into a land-cover COG + STAC.

A thin adapter over `app_package.inference.classify.classify`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app_package import __version__
from app_package.defaults import CHAMPION_URI, CLASSIFICATION_PROCESS, SAMPLE_PRODUCT
from app_package.inference.clouds import (
    CLOUD_MASK_METHODS,
    DEFAULT_CLOUD_MASK,
    DEFAULT_CLOUD_THRESHOLD,
)
from app_package.jobs.processor import JobProcessor, tracking_uri
from app_package.model.source import RUNTIMES
from app_package.util.progress import ProgressCallback

logger = logging.getLogger(__name__)


PROCESS_METADATA: dict[str, Any] = {
    "version": __version__,
    "id": CLASSIFICATION_PROCESS,
    "title": {"en": "Sentinel-2 tile classification"},
    "description": {
        "en": "Classifies every 64x64 chip of a Sentinel-2 L1C or L2A product with a trained "
        "EuroSAT model; cells under clouds or snow get the class Cloud; writes a class map, a "
        "confidence map and the cloud mask as COGs, a PNG preview and a STAC catalog. Progress "
        "is reported per chip batch."
    },
    "jobControlOptions": ["async-execute", "sync-execute"],
    "outputTransmission": ["value", "reference"],
    "keywords": ["EuroSAT", "Sentinel-2", "land cover", "COG", "STAC"],
    "links": [],
    "inputs": {
        "model": {
            "title": "Model",
            "description": "The trained model: an MLflow URI (models:/name/<version>, "
            "models:/name@alias, runs:/<id>/model), or the path of a training run's STAC "
            "catalog / model folder under the server's data folders.",
            "schema": {"type": "string", "format": "uri-reference", "minLength": 1},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "product": {
            "title": "Sentinel-2 product",
            "description": "A STAC item (item.json) or SAFE folder of a Sentinel-2 L1C or L2A "
            "product, as a path or URL. Default: the bundled real L1C subset (tile 33UUU).",
            "schema": {"type": "string", "format": "uri-reference", "minLength": 1},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "stride": {
            "title": "Stride",
            "description": "Pixels between chip origins (default: 64, no overlap).",
            "schema": {"type": "integer", "minimum": 1, "maximum": 64},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "batch_size": {
            "title": "Batch size",
            "description": "Chips per inference batch.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 8192, "default": 256},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "runtime": {
            "title": "Runtime",
            "description": "What runs the network: torch (PyTorch, bf16 where the CPU has it) "
            "or onnx (the model's ONNX artifact on ONNX Runtime, CPU). Default: torch.",
            "schema": {"type": "string", "enum": list(RUNTIMES), "default": "torch"},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "cloud_mask": {
            "title": "Cloud mask",
            "description": "Where clouds and snow are found: scl (an L2A product's scene "
            "classification: cloud shadow, cloud medium/high probability, thin cirrus, snow), "
            "s2cloudless (L1C reflectance, needs B10), none, or auto (scl for L2A, s2cloudless "
            "for L1C with B10, else none). Masked cells get the class Cloud (10); the mask is an "
            "output asset. Default: auto.",
            "schema": {
                "type": "string",
                "enum": list(CLOUD_MASK_METHODS),
                "default": DEFAULT_CLOUD_MASK,
            },
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "cloud_threshold": {
            "title": "Cloud threshold",
            "description": "A cell becomes Cloud when more than this share (0-1) of it is "
            f"masked. Default: {DEFAULT_CLOUD_THRESHOLD}.",
            "schema": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "default": DEFAULT_CLOUD_THRESHOLD,
            },
            "minOccurs": 0,
            "maxOccurs": 1,
        },
        "per_chip": {
            "title": "Per chip",
            "description": "At strides below the chip size, classify every chip from scratch "
            "(exact, (64/stride)² times the work) instead of pooling convolutional features "
            "computed once per strip (a chip's border then sees its neighbours' pixels). "
            "Default: false.",
            "schema": {"type": "boolean", "default": False},
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": {
        "catalog": {
            "title": "Classification catalog",
            "description": "STAC catalog of the classified product: class-map, confidence and "
            "cloud-mask COGs, a PNG preview, a thumbnail with a legend (classification and eo "
            "extensions, eo:cloud_cover). Asset hrefs resolve over HTTP on this server.",
            "schema": {
                "type": "object",
                "contentMediaType": "application/json",
                "required": ["type", "id", "links"],
            },
        }
    },
    "example": {"inputs": {"model": CHAMPION_URI}},
}


class ClassificationProcessor(JobProcessor):
    """Runs `app_package.inference.classify.classify` for a job."""

    def __init__(self, processor_def: dict[str, Any]) -> None:
        super().__init__(processor_def, PROCESS_METADATA)
        self.tracking_uri = tracking_uri(processor_def)

    def run(self, inputs: dict[str, Any], output: Path, progress: ProgressCallback) -> Path:
        from app_package.inference.classify import classify

        return classify(
            str(inputs.get("product", SAMPLE_PRODUCT)),
            str(inputs["model"]),
            output,
            stride=inputs.get("stride"),
            batch_size=int(inputs.get("batch_size", 256)),
            runtime=str(inputs.get("runtime", "torch")),
            cloud_mask=str(inputs.get("cloud_mask", DEFAULT_CLOUD_MASK)),
            cloud_threshold=float(inputs.get("cloud_threshold", DEFAULT_CLOUD_THRESHOLD)),
            per_chip=bool(inputs.get("per_chip", False)),
            tracking_uri=self.tracking_uri,  # MLflow model URIs resolve against the server's store
            progress=progress,
        )
