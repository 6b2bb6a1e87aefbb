"""The STAC MLM item and catalog for a trained model, validated offline with real schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_package.eo.bands import EUROSAT_CLASSES, EUROSAT_MEAN, EUROSAT_STD
from app_package.errors import DataError
from app_package.model.spec import ModelSpec
from app_package.stac.validation import validate_catalog, validate_stac
from app_package.training.mlm import (
    MLM_EXTENSION,
    ModelItemInfo,
    item_id,
    model_item,
    write_catalog,
)
from tests.conftest import SCHEMAS


def _info(
    bands: tuple[str, ...], arch: str = "smallcnn", accelerator: str = "cpu"
) -> ModelItemInfo:
    return ModelItemInfo(
        item_id=item_id("eurosat classifier", "7"),
        spec=ModelSpec.for_bands(arch, bands),
        hyperparameters={"epochs": 3, "lr": 0.001, "optimizer": "adamw", "samples_per_class": None},
        test_accuracy=0.91,
        macro_f1=0.9,
        total_parameters=123456,
        accelerator=accelerator,
        framework_version="2.14.1",
        run_id="abc123",
        run_url="http://127.0.0.1:5000/#/experiments/1/runs/abc123",
        model_uri="models:/eurosat-classifier/7",
        training_source="/data/stac/catalog.json",
    )


def test_item_id_is_path_safe() -> None:
    assert item_id("eurosat classifier", "7") == "eurosat-classifier-v7"


def test_item_describes_inputs_by_band_name_and_outputs_with_classes() -> None:
    bands = ("B8A", "B04", "B02")
    item = model_item(_info(bands))
    props = item["properties"]
    assert MLM_EXTENSION.endswith("/mlm/v1.5.2/schema.json")
    assert MLM_EXTENSION in item["stac_extensions"]
    (inp,) = props["mlm:input"]
    assert inp["bands"] == ["B8A", "B04", "B02"]
    assert inp["input"]["shape"] == [-1, 3, 64, 64]
    assert [v["type"] for v in inp["value_scaling"]] == ["z-score"] * 3
    assert inp["value_scaling"][0]["mean"] == EUROSAT_MEAN["B8A"]
    assert inp["value_scaling"][0]["stddev"] == EUROSAT_STD["B8A"]
    assert inp["value_scaling"][2]["mean"] == EUROSAT_MEAN["B02"]
    (out,) = props["mlm:output"]
    classes = out["classification:classes"]
    assert [c["name"] for c in classes] == [c.name for c in EUROSAT_CLASSES]
    assert [c["value"] for c in classes] == [c.value for c in EUROSAT_CLASSES]
    assert classes[8]["color_hint"] == EUROSAT_CLASSES[8].color_hex
    assert props["mlm:framework"] == "PyTorch"
    assert props["mlm:accelerator"] == "amd64"
    assert model_item(_info(bands, accelerator="cuda"))["properties"]["mlm:accelerator"] == "cuda"
    assert props["mlm:hyperparameters"]["lr"] == 0.001
    assert "samples_per_class" not in props["mlm:hyperparameters"]
    assert props["mlm:hyperparameters"]["head"] == {"pool": "meanstd", "chip_stats": True}
    assert [b["name"] for b in props["bands"]] == ["B8A", "B04", "B02"]
    model = item["assets"]["model"]
    assert model["roles"] == ["mlm:model", "data"]
    assert model["mlm:artifact_type"] == "torch.save"
    assert item["assets"]["model-spec"]["href"] == "./model.json"
    via = next(link for link in item["links"] if link["rel"] == "via")
    assert via["href"].endswith("/runs/abc123")


@pytest.mark.parametrize(
    ("bands", "arch"), [(("B04", "B03", "B02"), "smallcnn"), (None, "resnet18")]
)
def test_catalog_validates_offline(
    tmp_path: Path, bands: tuple[str, ...] | None, arch: str
) -> None:
    from app_package.eo.bands import parse_bands

    info = _info(parse_bands(bands), arch)
    catalog = write_catalog(tmp_path, info)
    assert validate_catalog(catalog, SCHEMAS) == 2
    item_path = tmp_path / info.item_id / f"{info.item_id}.json"
    used = validate_stac(item_path, SCHEMAS)
    assert MLM_EXTENSION in used


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["properties"].pop("mlm:input"),
        lambda d: d["assets"]["model"].pop("mlm:artifact_type"),
        lambda d: d["properties"]["mlm:output"][0].update({"tasks": ["dreaming"]}),
        lambda d: d["properties"]["mlm:input"][0]["value_scaling"][0].pop("stddev"),
    ],
)
def test_validator_rejects_a_broken_item(tmp_path: Path, breakage: object) -> None:
    d = model_item(_info(("B02", "B03")))
    breakage(d)  # type: ignore[operator]
    path = tmp_path / "item.json"
    path.write_text(json.dumps(d))
    with pytest.raises(DataError):
        validate_stac(path, SCHEMAS)
