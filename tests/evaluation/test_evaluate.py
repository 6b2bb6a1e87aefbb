"""A written class map against written reference polygons in another CRS: known agreement,
the report and its picture, and every error naming the bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_package.errors import DataError, InputError, NotFoundError
from app_package.evaluation.evaluate import evaluate, evaluate_map
from app_package.evaluation.mapping import parse_mapping
from app_package.evaluation.report import PICTURE_FILE, REPORT_FILE
from tests.evaluation import data
from tests.inference.pictures import pixels


@pytest.fixture(scope="module")
def class_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return data.write_map(tmp_path_factory.mktemp("map") / "classification.tif")


@pytest.mark.parametrize(
    ("name", "crs"),
    [("ref.geojson", "EPSG:4326"), ("ref.gpkg", "EPSG:3857"), ("ref.fgb", "EPSG:32633")],
)
def test_known_agreement_whatever_the_format_and_crs(
    class_map: Path, tmp_path: Path, name: str, crs: str
) -> None:
    ref = data.write_reference(tmp_path / name, crs)
    e = evaluate_map(
        str(class_map), str(ref), field="landcover", mapping=parse_mapping(data.MAPPING_INLINE)
    )
    a, x = e.agreement, e.excluded
    assert e.mapping.values == data.ROWS
    assert a.cells.tolist() == list(data.CELLS) and a.agreeing.tolist() == list(data.AGREEING)
    assert (x.reference_cells, x.overlapping, x.nodata) == (
        data.INSIDE, data.OVERLAPPING, data.NODATA_CELLS
    )  # fmt: skip
    assert x.not_a_class == {data.CLOUD: data.CLOUD_CELLS}
    assert a.overall_accuracy == pytest.approx(data.OVERALL)
    assert a.kappa == pytest.approx(data.KAPPA)
    assert a.balanced_accuracy == pytest.approx(data.BALANCED)
    fields = e.classes.index("AnnualCrop"), e.classes.index("Forest"), e.classes.index("Pasture")
    assert [int(a.matrix[1, c]) for c in fields] == [192, 60, 128]
    assert e.reference.crs == crs and e.map.crs == data.CRS


def test_report_and_picture(class_map: Path, tmp_path: Path) -> None:
    ref = data.write_reference(tmp_path / "ref.geojson")
    out = tmp_path / "out"
    evaluate(str(class_map), ref.as_uri(), out, field="landcover",
             mapping=parse_mapping(data.MAPPING_INLINE))  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [REPORT_FILE, PICTURE_FILE]
    doc = json.loads((out / REPORT_FILE).read_text())
    assert doc["type"] == "map-evaluation"
    assert doc["cells"] == {
        "inside_reference": data.INSIDE,
        "compared": sum(data.CELLS),
        "excluded": {"overlapping_reference_classes": data.OVERLAPPING,
                     "nodata": data.NODATA_CELLS, "not_a_map_class": {"10": data.CLOUD_CELLS}},
    }  # fmt: skip
    assert doc["kappa"] == pytest.approx(data.KAPPA)
    fields = doc["classes"][1]
    assert fields == {
        "reference": "fields",
        "accepted": ["AnnualCrop", "PermanentCrop", "Pasture"],
        "cells": 380,
        "agreeing": 320,
        "agreement": pytest.approx(320 / 380),
    }
    assert doc["confusion_matrix"]["rows"] == list(data.ROWS)
    assert len(doc["confusion_matrix"]["columns"]) == 10
    assert doc["links"][0]["href"] == f"./{PICTURE_FILE}"
    img = pixels(out / PICTURE_FILE)
    assert img.shape[0] > 300 and img.shape[1] > 600


def test_identity_mapping_when_the_values_are_class_names(class_map: Path, tmp_path: Path) -> None:
    polygons = {"Forest": (2, 18, 2, 18), "AnnualCrop": (20, 40, 0, 10)}
    ref = data.write_reference(tmp_path / "ref.gpkg", polygons=polygons, field="cls")
    e = evaluate_map(str(class_map), str(ref), field="cls")
    assert e.mapping.identity and e.mapping.values == ("AnnualCrop", "Forest")
    assert e.agreement.overall_accuracy == pytest.approx(1.0)
    assert e.agreement.cells.tolist() == [200, 252]  # Forest: 4 nodata cells left out


def test_errors_name_the_input_and_the_fix(class_map: Path, tmp_path: Path) -> None:
    ref = data.write_reference(tmp_path / "ref.geojson")
    mapping = parse_mapping(data.MAPPING_INLINE)
    with pytest.raises(InputError) as e:
        evaluate_map(str(class_map), str(ref), field="class", mapping=mapping)
    assert "has no field 'class': its fields are 'id', 'landcover'" in str(e.value)
    assert e.value.field == "field"
    with pytest.raises(InputError) as e:
        evaluate_map(str(class_map), str(ref), field="landcover",
                     mapping=parse_mapping("forest=Forest,fields=Pasture"))  # fmt: skip
    assert "reference values 'meadow', 'water' have no mapping" in str(e.value)
    with pytest.raises(InputError, match="values 'fields', 'meadow', 'water' are not EuroSAT"):
        evaluate_map(str(class_map), str(ref), field="landcover")
    far = data.write_reference(tmp_path / "far.geojson", offset=(5000.0, 0.0))
    with pytest.raises(DataError) as apart:
        evaluate_map(str(class_map), str(far), field="landcover", mapping=mapping)
    message = str(apart.value)
    assert "do not overlap: the map covers [500000, 5.7996e+06, 500400, 5.8e+06]" in message
    assert "and the reference polygons [505020" in message and "EPSG:4326" in message
    with pytest.raises(NotFoundError, match=r"class map .*nope.tif does not exist"):
        evaluate_map(str(tmp_path / "nope.tif"), str(ref), field="landcover", mapping=mapping)
    with pytest.raises(NotFoundError, match=r"reference file .*nope.gpkg does not exist"):
        evaluate_map(str(class_map), str(tmp_path / "nope.gpkg"), field="landcover")
    (tmp_path / "bad.geojson").write_text("{ not json")
    with pytest.raises(DataError, match=r"cannot read reference polygons from .*bad.geojson"):
        evaluate_map(str(class_map), str(tmp_path / "bad.geojson"), field="landcover")


def test_nothing_comparable_is_an_error_and_no_output_is_left(
    class_map: Path, tmp_path: Path
) -> None:
    ref = data.write_reference(tmp_path / "ref.geojson", polygons={"Forest": (0, 4, 0, 4)})
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"none of the 16 cells .* 16 nodata"):
        evaluate(str(class_map), str(ref), out, field="landcover")
    assert list(tmp_path.iterdir()) == [ref]  # no output, no temporary folder
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        evaluate(str(class_map), str(ref), out, field="landcover")
    assert [p.name for p in out.iterdir()] == ["keep"]
