"""Reference polygons for the bundled Sentinel-2 L1C subset (tile 33UUU, 2017-02-16, Havel lakes
west of Potsdam), drawn by photo-interpretation, and the mapping of their classes to EuroSAT's.

How they were drawn (2026-12-05): a true-colour picture of the subset (B04/B03/B02, 2-98 %
stretch, at 2x with a 50 px grid) was read by eye; each polygon is a rectangle of 10 m pixels
placed well inside one land cover, at least ~30 px from its edge where the feature allows,
avoiding the two cloud streaks (top centre, bottom centre) and their shadows. Land cover was
judged from colour, texture and shape only (no other map was available offline):
- water: the lakes (dark grey-blue, partly ice-covered in February), inside the shoreline;
- forest: dark green, coarse-textured blocks with sharp straight edges (managed pine stands);
  one brownish, dark block in the south-west is leafless broadleaf or mixed forest;
- arable: brown or pale bare fields in regular parcels (ploughed or dormant in February);
- green field: bright green parcels (winter cereal or grassland: not told apart in one date);
- village: clustered red roofs and gardens along roads.
Rectangles are (class, first column, first row, last column, last row, note) in pixels of the
subset's 10 m grid (origin 330000 E, 5822040 N, EPSG:32633, 1536 x 768 px).

`python -m bench.reference OUT.geojson` writes them as GeoJSON in EPSG:4326 (field `class`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ORIGIN = (330000.0, 5822040.0)
PIXEL_M = 10.0
CRS = "EPSG:32633"

RECTANGLES: tuple[tuple[str, int, int, int, int, str], ...] = (
    ("water", 480, 530, 515, 720, "lake south of the town"),
    ("water", 745, 395, 840, 435, "lake, centre"),
    ("water", 1160, 265, 1290, 335, "large lake, east"),
    ("water", 1320, 175, 1400, 205, "lake arm, north-east"),
    ("water", 1455, 5, 1485, 80, "lake, north-east corner"),
    ("forest", 160, 340, 260, 470, "pine block, west"),
    ("forest", 5, 5, 90, 35, "forest, north-west corner"),
    ("forest", 5, 370, 80, 440, "forest, west edge"),
    ("forest", 400, 20, 460, 50, "forest belt, north"),
    ("forest", 570, 70, 640, 150, "forest block, north centre"),
    ("forest", 320, 285, 390, 325, "forest strip, centre west"),
    ("forest", 30, 500, 150, 600, "dark brownish forest, south-west (leafless)"),
    ("forest", 1205, 170, 1245, 225, "forest north of the large lake"),
    ("forest", 885, 432, 935, 465, "small forest south of the centre lake"),
    ("arable", 435, 330, 475, 395, "bare fields, centre"),
    ("arable", 530, 200, 570, 260, "bare field, north centre"),
    ("arable", 620, 170, 680, 260, "pale field east of the north forest"),
    ("arable", 105, 190, 165, 280, "pale fields, west"),
    ("arable", 910, 510, 1090, 590, "bare fields, south centre"),
    ("arable", 1120, 420, 1230, 490, "fields south of the large lake"),
    ("arable", 960, 605, 1100, 640, "fields, south"),
    ("arable", 1275, 435, 1440, 495, "pale grey fields, south-east"),
    ("green field", 370, 395, 410, 440, "green parcel, centre west"),
    ("green field", 470, 225, 520, 300, "green parcel, north centre"),
    ("green field", 280, 560, 340, 590, "green parcel, south-west"),
    ("green field", 1255, 135, 1310, 170, "green parcels, north-east"),
    ("green field", 1370, 280, 1440, 350, "green and brown parcels, east"),
    ("village", 500, 455, 600, 490, "the town on the lake (centre)"),
    ("village", 245, 640, 330, 700, "village, south-west"),
    ("village", 686, 314, 721, 371, "village by the centre lake"),
    ("village", 1455, 575, 1530, 640, "village, south-east edge"),
    ("village", 1125, 665, 1245, 705, "street village, south"),
    ("village", 1472, 136, 1522, 186, "village by the north-east lake"),
    ("village", 0, 235, 43, 285, "village, west edge"),
)

# Which EuroSAT classes count as agreeing with each reference class (`evaluate --mapping`).
# Fields in February cannot be told apart from one date: a bare field may be arable land
# (AnnualCrop) or dormant grassland/fallow (HerbaceousVegetation); a green one winter cereal
# or grassland.
MAPPING: dict[str, list[str]] = {
    "water": ["SeaLake", "River"],
    "forest": ["Forest"],
    "arable": ["AnnualCrop", "HerbaceousVegetation"],
    "green field": ["AnnualCrop", "Pasture", "HerbaceousVegetation"],
    "village": ["Residential"],
}


def feature_collection() -> dict[str, Any]:
    """The rectangles as a GeoJSON FeatureCollection in EPSG:4326."""
    from pyproj import Transformer

    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    x0, y0 = ORIGIN
    features = []
    for cls, c0, r0, c1, r1, note in RECTANGLES:
        corners = [(c0, r0), (c1 + 1, r0), (c1 + 1, r1 + 1), (c0, r1 + 1), (c0, r0)]
        ring = [to_wgs84.transform(x0 + c * PIXEL_M, y0 - r * PIXEL_M) for c, r in corners]
        features.append(
            {
                "type": "Feature",
                "properties": {"class": cls, "note": note},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[round(x, 7), round(y, 7)] for x, y in ring]],
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(feature_collection(), indent=1) + "\n")
    return path


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "reference.geojson")))
