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
    bands: tuple[str, ...], arch: str = "smallcnn", training_device: str = "cpu"
) -> ModelItemInfo:
    return ModelItemInfo(
        item_id=item_id("eurosat classifier", "7"),
        spec=ModelSpec.for_bands(arch, bands),
        hyperparameters={"epochs": 3, "lr": 0.001, "optimizer": "adamw", "samples_per_class": None},
        test_accuracy=0.91,
        macro_f1=0.9,
        total_parameters=123456,
        training_device=training_device,
        framework_version="2.14.1",
        run_id="abc123",
        run_url="http://127.0.0.1:5000/#/experiments/1/runs/abc123",
        model_uri="models:/eurosat-classifier/7",
        training_source="/data/stac/catalog.json",
    )


def test_item_id_is_path_safe_and_searchable() -> None:
    assert item_id("eurosat classifier", "7") == "eurosat-classifier-v7"
    assert item_id("EuroSAT/Classifier.x", "12") == "eurosat-classifier-x-v12"


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
    # the accelerator inference needs (any CPU), whatever trained it; the trainer is recorded
    cuda = model_item(_info(bands, training_device="cuda"))["properties"]
    for p, device in ((props, "cpu"), (cuda, "cuda")):
        assert p["mlm:accelerator"] == "amd64" and p["mlm:accelerator_constrained"] is False
        assert p["mlm:hyperparameters"]["training_device"] == device
    assert props["mlm:hyperparameters"]["lr"] == 0.001
    assert "samples_per_class" not in props["mlm:hyperparameters"]
    assert props["mlm:hyperparameters"]["head"] == {"pool": "meanstd", "chip_stats": True}
    assert [b["name"] for b in props["bands"]] == ["B8A", "B04", "B02"]
    model = item["assets"]["model"]
    assert model["roles"] == ["mlm:model", "mlm:weights", "data"]
    assert model["mlm:artifact_type"] == "torch.save"
    assert model["type"] == "application/octet-stream; application=pytorch"
    onnx = item["assets"]["model-onnx"]
    assert onnx["href"] == "./model.onnx" and onnx["mlm:artifact_type"] == "onnx"
    assert onnx["type"] == "application/octet-stream; application=onnx"
    assert {"mlm:model", "mlm:weights"} <= set(onnx["roles"])
    assert item["assets"]["model-spec"]["href"] == "./model.json"
    via = next(link for link in item["links"] if link["rel"] == "via")
    assert via["href"].endswith("/runs/abc123") and via["title"] == "MLflow run abc123"
    data = next(link for link in item["links"] if link["rel"] == "derived_from")
    assert data["href"] == "/data/stac/catalog.json" and data["type"] == "application/json"
    assert all(link.get("title") for link in item["links"])
    assert item["geometry"] is None and "bbox" not in item  # no footprint given


def test_footprint_and_file_fields() -> None:
    from app_package.training.mlm import FILE_EXTENSION, bbox_of, multihash_sha256

    box = bbox_of([[1, 50, 2, 51], [-3.5, 52, 0, 53], [1, 2, 3]])
    assert box == (-3.5, 50, 2, 53) and bbox_of([]) is None
    info = _info(("B02",))
    item = model_item(
        ModelItemInfo(**{**info.__dict__, "bbox": box}),
        {"model.pt": {"file:size": 3, "file:checksum": multihash_sha256(b"abc")}},
    )
    assert item["bbox"] == [-3.5, 50, 2, 53]
    assert item["geometry"]["coordinates"][0][0] == [-3.5, 50]
    assert FILE_EXTENSION in item["stac_extensions"]
    # sha2-256 multihash: 0x12, 32 bytes (0x20), then the digest
    assert item["assets"]["model"]["file:checksum"] == (
        "1220ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


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
