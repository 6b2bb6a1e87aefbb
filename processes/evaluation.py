"""`map-evaluation`: a class map compared with reference polygons (confusion matrix, overall
and balanced accuracy, kappa) as a JSON report with its picture.

A thin adapter over `app_package.evaluation.evaluate.evaluate`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app_package import __version__
from app_package.defaults import EVALUATION_PROCESS
from app_package.eo.bands import EUROSAT_CLASS_NAMES
from app_package.evaluation.evaluate import evaluate
from app_package.evaluation.mapping import mapping_from_object
from app_package.evaluation.report import REPORT_FILE
from app_package.jobs.processor import JobProcessor
from app_package.util.progress import ProgressCallback

logger = logging.getLogger(__name__)

CLASS_NAMES = f"{', '.join(EUROSAT_CLASS_NAMES)}"

PROCESS_METADATA: dict[str, Any] = {
    "version": __version__,
    "id": EVALUATION_PROCESS,
    "title": {"en": "Class map evaluation against reference polygons"},
    "description": {
        "en": "Compares a class map (the classification COG of tile-classification: uint8 "
        "EuroSAT classes, 255 nodata) with reference polygons (GeoPackage, GeoJSON or "
        "FlatGeobuf, any CRS, reprojected to the map's). Every map cell whose centre lies "
        "inside a polygon is compared with the polygon's class, mapped to the map classes it "
        "accepts. Reports per reference class its cells and the share where the map agrees, "
        "the confusion matrix (reference classes × map classes), overall accuracy, Cohen's "
        "kappa (0/1 agreement weights when a reference class accepts several map classes) and "
        "balanced accuracy (mean per-class agreement). Nodata, map values that are not EuroSAT "
        "classes (e.g. cloud) and cells inside polygons of different classes are not compared "
        "and are counted by reason."
    },
    "jobControlOptions": ["async-execute", "sync-execute"],
    "outputTransmission": ["value", "reference"],
    "keywords": ["accuracy", "confusion matrix", "kappa", "land cover", "validation"],
    "links": [],
    "inputs": {
        "map": {
            "title": "Class map",
            "description": "The class map to evaluate, as a path or URL: a single-band GeoTIFF "
            "of EuroSAT class values (the classification.tif asset of a tile-classification "
            "output).",
            "schema": {"type": "string", "format": "uri-reference", "minLength": 1},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "reference": {
            "title": "Reference polygons",
            "description": "The reference areas, as a path or URL: a GeoPackage (its first "
            "layer), GeoJSON or FlatGeobuf file of polygons in any CRS.",
            "schema": {"type": "string", "format": "uri-reference", "minLength": 1},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "field": {
            "title": "Class field",
            "description": "The attribute of the reference polygons holding each one's class.",
            "schema": {"type": "string", "minLength": 1},
            "minOccurs": 1,
            "maxOccurs": 1,
        },
        "mapping": {
            "title": "Mapping of reference values to map classes",
            "description": "An object from each reference value (as text: the code 311 is "
            '"311") to the map class it accepts, or to several: a list of names or names '
            'joined by \'|\' (e.g. {"forest": "Forest", "fields": ["AnnualCrop", '
            '"PermanentCrop", "Pasture"]}: a cell of a fields polygon agrees when the map '
            f"holds any of the three). Map classes: {CLASS_NAMES}. Every reference value "
            "present must be mapped. Default: the reference values are these class names.",
            "schema": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": {
                    "oneOf": [
                        {"type": "string", "minLength": 1},
                        {
                            "type": "array",
                            "items": {"type": "string", "minLength": 1},
                            "minItems": 1,
                        },
                    ]
                },
            },
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": {
        "report": {
            "title": "Evaluation report",
            "description": "The JSON report: cells compared and left out (by reason), overall "
            "accuracy, kappa, balanced accuracy, each reference class's cells and agreement, "
            "the confusion matrix (rows: reference values, columns: map classes). Its "
            "`preview` link is the picture (confusion matrix and per-class agreement), served "
            "by this server for asynchronous jobs.",
            "schema": {
                "type": "object",
                "contentMediaType": "application/json",
                "required": ["type", "overall_accuracy", "kappa", "confusion_matrix"],
            },
        }
    },
    "example": {
        "inputs": {
            "map": "https://example.org/outputs/landcover/classification.tif",
            "reference": "https://example.org/reference/landcover.gpkg",
            "field": "class",
            "mapping": {"forest": "Forest", "fields": ["AnnualCrop", "PermanentCrop", "Pasture"]},
        }
    },
}


class EvaluationProcessor(JobProcessor):
    """Runs `app_package.evaluation.evaluate.evaluate` for a job."""

    def __init__(self, processor_def: dict[str, Any]) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict[str, Any], output: Path, progress: ProgressCallback) -> Path:
        mapping = mapping_from_object(inputs["mapping"]) if "mapping" in inputs else None
        evaluate(
            str(inputs["map"]),
            str(inputs["reference"]),
            output,
            field=str(inputs["field"]),
            mapping=mapping,
            progress=progress,
        )
        return output / REPORT_FILE
