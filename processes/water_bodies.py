"""`water-bodies`: water masks of Sentinel-2 products (NDWI + Otsu) as COGs + one STAC catalog.

A thin adapter over `app_package.inference.water_bodies.water_bodies`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app_package import __version__
from app_package.defaults import SAMPLE_PRODUCT, WATER_BODIES_PROCESS
from app_package.eo.bbox import CRS84, from_ogc_bbox
from app_package.inference.water_bodies import water_bodies
from app_package.jobs.processor import JobProcessor
from app_package.util.progress import ProgressCallback

logger = logging.getLogger(__name__)


PROCESS_METADATA: dict[str, Any] = {
    "version": __version__,
    "id": WATER_BODIES_PROCESS,
    "title": {"en": "Sentinel-2 water bodies (NDWI + Otsu)"},
    "description": {
        "en": "Detects open water in Sentinel-2 L1C/L2A products: NDWI = (green - nir) / "
        "(green + nir) from bands B03 and B08 (radiometric offset removed for processing "
        "baseline 04.00 and later), thresholded per product by Otsu's method over the valid "
        "pixels, optionally within an area of interest. Writes one uint8 water-mask COG "
        "(0 not water, 1 water, 255 nodata) and one STAC item per product, all in one STAC "
        "catalog. Progress is reported per block of rows read."
    },
    "jobControlOptions": ["async-execute", "sync-execute"],
    "outputTransmission": ["value", "reference"],
    "keywords": ["Sentinel-2", "water", "NDWI", "Otsu", "COG", "STAC"],
    "links": [],
    "inputs": {
        "items": {
            "title": "Sentinel-2 items",
            "description": "The products to map, one value per product: a STAC item (item.json) "
            "or SAFE folder of a Sentinel-2 L1C/L2A product, as a path or URL. Bands B03 and "
            "B08 are found by name whatever the asset keys. Default: the bundled real L1C "
            "subset (tile 33UUU).",
            "schema": {"type": "string", "format": "uri-reference", "minLength": 1},
            "minOccurs": 0,
            "maxOccurs": "unbounded",
        },
        "aoi": {
            "title": "Area of interest",
            "description": "An OGC bounding box: bbox [minx, miny, maxx, maxy] (or 6 numbers, "
            "with heights) in crs, a CRS URI (default CRS84, longitude and latitude; e.g. "
            "http://www.opengis.net/def/crs/EPSG/0/32633 for the product's UTM zone). Only the "
            "pixels it touches are mapped (and used for the threshold). Default: the whole "
            "product.",
            "schema": {
                "type": "object",
                "format": "ogc-bbox",
                "required": ["bbox"],
                "properties": {
                    "bbox": {
                        "type": "array",
                        "oneOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}],
                        "items": {"type": "number"},
                    },
                    "crs": {"type": "string", "format": "uri", "default": CRS84},
                },
            },
            "minOccurs": 0,
            "maxOccurs": 1,
        },
    },
    "outputs": {
        "catalog": {
            "title": "Water-bodies catalog",
            "description": "STAC catalog with one item per product: the water-mask COG "
            "(classification extension: not_water 0, water 1, nodata 255), the Otsu NDWI "
            "threshold (water:ndwi_threshold) and the water fraction (water:fraction). Asset "
            "hrefs resolve over HTTP on this server.",
            "schema": {
                "type": "object",
                "contentMediaType": "application/json",
                "required": ["type", "id", "links"],
            },
        }
    },
    "example": {"inputs": {"aoi": {"bbox": [12.55, 52.46, 12.65, 52.5], "crs": CRS84}}},
}


class WaterBodiesProcessor(JobProcessor):
    """Runs `app_package.inference.water_bodies.water_bodies` for a job."""

    def __init__(self, processor_def: dict[str, Any]) -> None:
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, inputs: dict[str, Any], output: Path, progress: ProgressCallback) -> Path:
        items = inputs.get("items", [str(SAMPLE_PRODUCT)])
        aoi, crs = from_ogc_bbox(inputs["aoi"]) if "aoi" in inputs else (None, CRS84)
        return water_bodies(
            [items] if isinstance(items, str) else [str(i) for i in items],
            output,
            aoi=aoi,
            aoi_crs=crs,
            progress=progress,
        )
