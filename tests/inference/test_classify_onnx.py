"""`classify --runtime onnx`: the shipped default model's ONNX file, run by ONNX Runtime, maps the
bundled real Sentinel-2 product to the classes PyTorch gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from app_package.cli import main
from app_package.defaults import DEFAULT_MODEL_CATALOG, SAMPLE_PRODUCT
from app_package.eo.sentinel2 import open_product
from app_package.errors import ModelError
from app_package.inference.classify import classify, classify_product
from app_package.model.networks import save_local
from app_package.model.source import resolve_model


def _class_map(out: Path) -> np.ndarray:
    (tif,) = out.glob("*/classification.tif")
    with rasterio.open(tif) as ds:
        return ds.read(1)


def test_onnx_runtime_maps_the_bundled_product_like_torch(tmp_path: Path) -> None:
    model = str(DEFAULT_MODEL_CATALOG)
    classify(str(SAMPLE_PRODUCT), model, tmp_path / "torch")  # runtime torch (bf16 where fast)
    with pytest.raises(SystemExit) as e:
        main(["classify", str(SAMPLE_PRODUCT), "--model", model, "--output",
              str(tmp_path / "onnx"), "--runtime", "onnx", "--device", "cpu"])  # fmt: skip
    assert e.value.code == 0
    torch_map, onnx_map = _class_map(tmp_path / "torch"), _class_map(tmp_path / "onnx")
    # PyTorch in float32 (ONNX Runtime computes in float32 too)
    ref = resolve_model(model)
    fp32, *_ = classify_product(
        open_product(str(SAMPLE_PRODUCT)), ref.loader, ref.spec, precision="fp32"
    )
    onnx_direct, *_ = classify_product(
        open_product(str(SAMPLE_PRODUCT)), ref.loader_for("onnx"), ref.spec
    )
    assert torch_map.shape == onnx_map.shape == (12, 24)
    assert np.array_equal(onnx_direct, fp32)
    assert np.array_equal(onnx_map, fp32.astype(np.uint8))
    # bf16 autocast (the torch default on CPUs that compute bf16) may flip a near-tie cell: with
    # the shipped model 1 of 288 (top-class probability 0.245 in both), none with the previous
    differ = torch_map != onnx_map
    assert differ.sum() <= 2, int(differ.sum())
    item = json.loads(next((tmp_path / "onnx").glob("*/*-landcover.json")).read_text())
    assert item["type"] == "Feature"


def test_onnx_runtime_below_the_chip_stride_classifies_every_chip() -> None:
    """At stride 32 ONNX Runtime has no window features: the strips come as pixel blocks (the
    reader cannot know the runtime) and their chips are extracted a few rows at a time and
    classified one by one, giving PyTorch's exact per-chip map (fp32 both)."""
    ref = resolve_model(str(DEFAULT_MODEL_CATALOG))
    product = open_product(str(SAMPLE_PRODUCT))
    onnx = classify_product(product, ref.loader_for("onnx"), ref.spec, stride=32)
    exact = classify_product(
        product, ref.loader, ref.spec, stride=32, precision="fp32", per_chip=True
    )
    assert onnx.times["windows"] == 0 and onnx.classes.shape == (24, 48)
    assert np.array_equal(onnx.classes, exact.classes)
    np.testing.assert_allclose(onnx.confidence, exact.confidence, atol=1e-4)


def test_onnx_runtime_without_an_onnx_file_fails_before_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = resolve_model(str(DEFAULT_MODEL_CATALOG))
    old = tmp_path / "old-model"
    save_local(ref.load().module, ref.spec, old)  # a model folder from before the ONNX export
    with pytest.raises(ModelError, match="has no ONNX artifact"):
        classify(str(SAMPLE_PRODUCT), str(old), tmp_path / "out", runtime="onnx")
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as e:
        main(["classify", str(SAMPLE_PRODUCT), "--model", str(old), "--output",
              str(tmp_path / "out2"), "--runtime", "onnx"])  # fmt: skip
    err = capsys.readouterr().err
    assert e.value.code == 65 and "has no ONNX artifact" in err and "runtime 'torch'" in err
    assert not (tmp_path / "out2").exists()
