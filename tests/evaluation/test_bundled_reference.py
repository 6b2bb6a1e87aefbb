"""The reference polygons drawn for the bundled L1C subset (bench/reference.py) are usable."""

from __future__ import annotations

import json
from pathlib import Path

from app_package.evaluation.mapping import mapping_from_object
from bench.reference import MAPPING, RECTANGLES, write

WIDTH, HEIGHT = 1536, 768  # the bundled subset's 10 m grid


def test_rectangles_lie_in_the_subset_and_classes_do_not_overlap() -> None:
    assert {r[0] for r in RECTANGLES} == set(MAPPING)
    for cls, c0, r0, c1, r1, _ in RECTANGLES:
        assert 0 <= c0 < c1 < WIDTH and 0 <= r0 < r1 < HEIGHT, cls
    for i, a in enumerate(RECTANGLES):
        for b in RECTANGLES[i + 1 :]:
            overlap = a[1] <= b[3] and b[1] <= a[3] and a[2] <= b[4] and b[2] <= a[4]
            assert not overlap, (a, b)


def test_written_geojson_and_mapping_are_what_evaluate_reads(tmp_path: Path) -> None:
    from app_package.evaluation.reference import read_reference

    path = write(tmp_path / "ref.geojson")
    doc = json.loads(path.read_text())
    assert len(doc["features"]) == len(RECTANGLES)
    lon, lat = doc["features"][0]["geometry"]["coordinates"][0][0]
    assert 12.4 < lon < 12.8 and 52.3 < lat < 52.6  # west of Potsdam
    reference = read_reference(str(path), "class")
    assert set(reference.values) == set(MAPPING)
    assert set(mapping_from_object(MAPPING).values) == set(MAPPING)
