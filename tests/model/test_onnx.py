"""The portable model: ONNX export of every architecture, ONNX Runtime against PyTorch on random
and real chips, the chip classifier's onnx runtime, and finding the ONNX file of every kind of
model reference (with a clear error for models saved without one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app_package.data.eurosat import read_chip
from app_package.defaults import DEFAULT_MODEL_CATALOG, SAMPLE_CATALOG
from app_package.eo.bands import EUROSAT_FILE_BAND_ORDER
from app_package.errors import InputError, ModelError
from app_package.inference.classifier import ChipClassifier
from app_package.model.networks import build_model, normalise, save_local
from app_package.model.onnx import OnnxNetwork, export_onnx, verify_onnx
from app_package.model.source import resolve_model
from app_package.model.spec import ONNX_FILE, ModelSpec
from app_package.stac.io import items, resolve_href
from tests.support.datagen import make_chip


def real_chips(bands: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The 40 real EuroSAT-MS chips the package ships (4 per class) and their class indices."""
    from app_package.eo.bands import EUROSAT_CLASS_NAMES

    x, y = [], []
    for item, href in items(str(SAMPLE_CATALOG)):
        x.append(read_chip(resolve_href(item["assets"]["image"]["href"], href), bands))
        name = item["properties"]["classification:classes"][0]["name"]
        y.append(EUROSAT_CLASS_NAMES.index(name))
    return np.stack(x), np.array(y)


def fitted(arch: str, bands: tuple[str, ...] = EUROSAT_FILE_BAND_ORDER) -> tuple:
    """A network of `arch` briefly fitted on synthetic chips, so its classes vary."""
    torch.manual_seed(0)
    spec = ModelSpec.for_bands(arch, bands)
    model = build_model(spec)
    rng = np.random.default_rng(0)
    x = normalise(
        np.stack([make_chip(c, rng)[: len(bands)] for c in range(10) for _ in range(4)]), spec
    )
    y = torch.arange(10).repeat_interleave(4)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), spec


@pytest.fixture(scope="module")
def smallcnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, ModelSpec, Path]:
    model, spec = fitted("smallcnn")
    folder = tmp_path_factory.mktemp("onnx") / "model"
    save_local(model, spec, folder)
    export_onnx(model, spec, folder / ONNX_FILE)
    return model, spec, folder


@pytest.mark.parametrize("arch", ["smallcnn", "resnet18"])
def test_onnx_export_gives_the_classes_of_torch(arch: str, tmp_path: Path) -> None:
    """Random and real chips, several batch sizes (the batch axis is dynamic); SmallCNN with its
    chip-statistics head."""
    model, spec = fitted(arch)
    if arch == "smallcnn":
        assert spec.extra.get("chip_stats") and model.stats  # the head under test
    path = export_onnx(model, spec, tmp_path / ONNX_FILE)
    import onnx

    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [13, 64, 64]
    net = OnnxNetwork(path)
    rng = np.random.default_rng(1)
    random = rng.integers(1, 5000, size=(37, 13, 64, 64), dtype=np.uint16)
    real, _ = real_chips(spec.bands)
    for chips in (random[:1], random, real):
        x = normalise(chips, spec)
        with torch.inference_mode():
            want = model(x).numpy()
        got = net.run(np.ascontiguousarray(x.numpy()))
        assert got.shape == (len(chips), 10) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
        assert np.array_equal(got.argmax(1), want.argmax(1))
    assert verify_onnx(path, model, spec, real) < 1e-3


def test_verify_onnx_rejects_another_network(tmp_path: Path) -> None:
    model, spec = fitted("smallcnn")
    path = export_onnx(model, spec, tmp_path / ONNX_FILE)
    torch.manual_seed(1)
    other = build_model(spec).eval()
    with pytest.raises(ModelError, match="does not reproduce"):
        verify_onnx(path, other, spec, real_chips(spec.bands)[0])


def test_chip_classifier_onnx_runtime_equals_torch(smallcnn: tuple) -> None:
    model, spec, folder = smallcnn
    ref = resolve_model(str(folder))
    chips = np.concatenate([real_chips(spec.bands)[0], real_chips(spec.bands)[0][::-1]])
    cpu = torch.device("cpu")
    torch_fp32 = ChipClassifier(model, spec, cpu, 16, "fp32")(chips)
    onnx = ChipClassifier(ref.loader_for("onnx")(), spec, cpu, 16)
    assert onnx.runtime == "onnx" and ChipClassifier(model, spec, cpu, 16).runtime == "torch"
    got = onnx(chips)
    np.testing.assert_allclose(got, torch_fp32, atol=1e-5)
    assert np.array_equal(got.argmax(1), torch_fp32.argmax(1))
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)
    with pytest.raises(InputError, match="precision 'bf16' needs runtime torch"):
        ChipClassifier(ref.load_onnx(), spec, cpu, 16, "bf16")
    with pytest.raises(InputError, match="unknown runtime 'tflite'"):
        ref.loader_for("tflite")


def test_every_local_reference_finds_the_onnx_file(smallcnn: tuple, tmp_path: Path) -> None:
    _, _, folder = smallcnn
    onnx = folder / ONNX_FILE
    for ref in (folder, folder / "model.pt", folder / "model.json"):
        assert resolve_model(str(ref)).onnx_path() == onnx
    # the shipped default model: catalog.json, its MLM item, its folder
    ((item, href),) = list(items(str(DEFAULT_MODEL_CATALOG)))
    shipped = Path(href).parent / ONNX_FILE
    for ref in (DEFAULT_MODEL_CATALOG, Path(href), Path(href).parent):
        assert resolve_model(str(ref)).onnx_path() == shipped
    assert resolve_href(item["assets"]["model-onnx"]["href"], href) == str(shipped)


def test_a_model_without_onnx_says_so_and_how_to_fix_it(smallcnn: tuple, tmp_path: Path) -> None:
    model, spec, _ = smallcnn
    old = tmp_path / "old-model"
    save_local(model, spec, old)  # as models were saved before the ONNX export existed
    ref = resolve_model(str(old))
    with pytest.raises(ModelError) as e:
        ref.loader_for("onnx")
    msg = str(e.value)
    assert str((old / "model.pt").resolve()) in msg and "has no ONNX artifact" in msg
    assert "runtime 'torch'" in msg and "python -m app_package.model.onnx" in msg
    assert ref.loader_for("torch")() is not None  # PyTorch still works
    # the fix it names: export the folder's model, then the onnx runtime works
    from app_package.model.onnx import main

    assert main([str(old)]) == 0 and (old / ONNX_FILE).is_file()
    assert resolve_model(str(old)).onnx_path() == old / ONNX_FILE


def test_item_href_of_local_references(smallcnn: tuple) -> None:
    _, _, folder = smallcnn
    assert resolve_model(str(folder)).item_href is None  # a bare model folder has no item
    ((_, href),) = list(items(str(DEFAULT_MODEL_CATALOG)))
    assert Path(href).is_absolute() and Path(href).is_file()
    for ref in (DEFAULT_MODEL_CATALOG, Path(href), Path(href).parent):
        assert resolve_model(str(ref)).item_href == href
