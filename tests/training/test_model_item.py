"""A freshly trained model's outputs: its MLM item checked by the ecosystem's validators
(stac-model's pydantic models, stac-check's best practices, the offline JSON schemas), the file
sizes and checksums it states, and the ONNX file and MLM item found from every model reference
(MLflow URIs included)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app_package.defaults import DEFAULT_MODEL_CATALOG
from app_package.model.source import STAC_ITEM_TAG, resolve_model
from app_package.model.spec import ONNX_FILE
from app_package.stac.validation import validate_catalog, validate_stac
from app_package.training.mlm import multihash_sha256
from app_package.training.train import TrainResult, train
from tests.conftest import SCHEMAS
from tests.support.stac_lint import stac_check_messages
from tests.support.training import assert_no_run_left_running, make_catalog, quick_config, store


def stac_model_check(item: dict[str, Any]) -> None:
    """stac-model (the MLM extension's own pydantic models) accepts the item's MLM fields."""
    from stac_model.schema import MLModelProperties

    props = MLModelProperties.model_validate(item["properties"])
    assert props.accelerator == "amd64" and props.accelerator_constrained is False
    assert len(props.input) == 1 and len(props.output) == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, Path, str]:
    root = tmp_path_factory.mktemp("trained")
    result = train(quick_config(make_catalog(root / "data", 4), root))
    (item_path,) = [p for p in (root / "out").glob("*/*.json") if p.stem == p.parent.name]
    return result, item_path, store(root)


def test_the_trained_item_validates_and_follows_best_practices(trained: tuple) -> None:
    result, item_path, uri = trained
    assert_no_run_left_running(uri)
    item = json.loads(item_path.read_text())
    assert validate_catalog(result.catalog, SCHEMAS) == 2
    validate_stac(item_path, SCHEMAS)
    stac_model_check(item)
    assert stac_check_messages(item_path) == {}
    catalog_findings = stac_check_messages(result.catalog)
    # a relocatable (self-contained) catalog has no absolute self link, on purpose
    assert set(catalog_findings) <= {"check_links_self"}, catalog_findings
    assert item["id"] == item["id"].lower() and item_path.stem == item["id"]


def test_the_trained_item_states_files_links_and_footprint(trained: tuple) -> None:
    result, item_path, _ = trained
    item = json.loads(item_path.read_text())
    for key, asset in item["assets"].items():
        data = (item_path.parent / asset["href"]).read_bytes()
        assert asset["file:size"] == len(data), key
        assert asset["file:checksum"] == multihash_sha256(data), key
    assert item["assets"]["model-onnx"]["href"] == f"./{ONNX_FILE}"
    rels = {link["rel"]: link for link in item["links"]}
    assert rels["via"]["href"] == f"runs:/{result.run_id}" and rels["via"]["title"]
    data_link = rels["derived_from"]
    assert Path(data_link["href"]).is_absolute() and Path(data_link["href"]).is_file()
    assert data_link["title"].startswith("Training data")
    w, s, e, n = item["bbox"]  # the synthetic chips' items lie in one UTM zone
    assert w < e and s < n and item["geometry"]["type"] == "Polygon"
    props = item["properties"]
    assert props["mlm:hyperparameters"]["training_device"] == "cpu"
    assert props["mlm:accelerator"] == "amd64"


def test_every_reference_of_a_trained_model_gives_its_onnx_file_and_item(
    trained: tuple,
) -> None:
    """MLflow (registry version and alias, runs:/), the output catalog, the item, its folder:
    the same ONNX bytes and the item's final path (recorded as a run tag after the output folder
    got its final name)."""
    result, item_path, uri = trained
    from mlflow import MlflowClient

    tag = MlflowClient(tracking_uri=uri).get_run(result.run_id).data.tags[STAC_ITEM_TAG]
    assert tag == str(item_path.resolve())
    shipped = (item_path.parent / ONNX_FILE).read_bytes()
    refs = [
        result.model_uri,
        "models:/eurosat-classifier@champion",
        f"runs:/{result.run_id}/model",
        str(result.catalog),
        str(item_path),
        str(item_path.parent),
    ]
    for ref in refs:
        model = resolve_model(ref, tracking_uri=uri)
        assert model.onnx_path().read_bytes() == shipped, ref
        assert model.item_href == str(item_path.resolve()), ref


def test_onnx_runtime_classifies_the_test_chips_like_torch(trained: tuple) -> None:
    import torch

    from app_package.inference.classifier import ChipClassifier
    from tests.model.test_onnx import real_chips

    result, _, uri = trained
    model = resolve_model(result.model_uri, tracking_uri=uri)
    chips, _ = real_chips(model.spec.bands)
    cpu = torch.device("cpu")
    fp32 = ChipClassifier(model.load().module, model.spec, cpu, 8, "fp32")(chips)
    onnx = ChipClassifier(model.loader_for("onnx")(), model.spec, cpu, 8)(chips)
    assert np.array_equal(fp32.argmax(1), onnx.argmax(1))
    np.testing.assert_allclose(fp32, onnx, atol=1e-5)


def test_the_shipped_default_model_item(tmp_path: Path) -> None:
    """The default model's MLM item: valid, truthful about its files, with the ONNX asset; once
    registered in MLflow its URI gives the same ONNX file and the shipped item."""
    from app_package.stac.io import items
    from app_package.training.default_model import ensure_registered

    ((item, href),) = list(items(str(DEFAULT_MODEL_CATALOG)))
    item_path = Path(href)
    validate_stac(item_path, SCHEMAS)
    stac_model_check(item)
    assert stac_check_messages(item_path) == {}
    for asset in item["assets"].values():
        data = (item_path.parent / asset["href"]).read_bytes()
        assert asset["file:checksum"] == multihash_sha256(data)
        assert asset["file:size"] == len(data)
    assert item["assets"]["model-onnx"]["mlm:artifact_type"] == "onnx"
    assert (item_path.parent / ONNX_FILE).stat().st_size < 2_000_000  # small, shipped in git
    uri = store(tmp_path)
    assert ensure_registered(uri) == "1"
    ref = resolve_model("models:/eurosat-classifier@champion", tracking_uri=uri)
    assert ref.item_href == href
    assert ref.onnx_path().read_bytes() == (item_path.parent / ONNX_FILE).read_bytes()
