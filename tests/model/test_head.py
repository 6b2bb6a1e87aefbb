"""SmallCNN's head: what new models are built with, and that models saved before it still load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app_package.errors import ModelError
from app_package.model.networks import SmallCNN, _mean_std, build_model, load_local, save_local
from app_package.model.spec import SMALLCNN_HEAD, ModelSpec

BANDS = ("B02", "B03", "B04", "B08")


def test_new_smallcnn_specs_carry_the_head_and_round_trip() -> None:
    spec = ModelSpec.for_bands("smallcnn", BANDS)
    assert spec.extra == SMALLCNN_HEAD == {"pool": "meanstd", "chip_stats": True}
    assert ModelSpec.from_dict(spec.to_dict()).extra == SMALLCNN_HEAD
    assert ModelSpec.for_bands("resnet18", BANDS).extra == {}
    model = build_model(spec)
    assert isinstance(model, SmallCNN) and model.pool_mode == "meanstd" and model.stats
    assert model.head[-1].in_features == 2 * 128  # mean and std of 128 channels
    x = torch.randn(3, len(BANDS), 64, 64)
    assert model(x).shape == (3, 10)
    assert model.eval()(x).shape == (3, 10)
    # fully convolutional with global statistics: other chip sizes work too
    assert model(torch.randn(2, len(BANDS), 32, 32)).shape == (2, 10)
    # a 1-chip training batch (the last of an epoch) trains too
    model.train()
    model(torch.randn(1, len(BANDS), 64, 64)).sum().backward()


def test_models_saved_before_the_head_load_as_they_were_trained(tmp_path: Path) -> None:
    old_spec = ModelSpec.from_dict(
        {**ModelSpec.for_bands("smallcnn", BANDS).to_dict(), "extra": {}}
    )
    torch.manual_seed(0)
    old = SmallCNN(len(BANDS), 10).eval()  # the original architecture
    weights, _ = save_local(old, old_spec, tmp_path)
    loaded = load_local(weights, old_spec)
    assert loaded.pool_mode == "avg"
    x = torch.randn(2, len(BANDS), 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), old(x))
    # and the new head's weights do not load into the old one (nor the reverse)
    new_spec = ModelSpec.for_bands("smallcnn", BANDS)
    new_weights, _ = save_local(build_model(new_spec), new_spec, tmp_path / "new")
    with pytest.raises(ModelError):
        load_local(new_weights, old_spec)
    assert load_local(new_weights, new_spec).pool_mode == "meanstd"


def test_mean_std_matches_torch_with_and_without_gradients() -> None:
    x = torch.randn(4, 5, 16, 16) * 3 + 2
    std, mean = torch.std_mean(x, dim=(2, 3), correction=0)
    expected = torch.cat([mean, (std.square() + 1e-5).sqrt()], 1)
    torch.testing.assert_close(_mean_std(x), expected, rtol=1e-4, atol=1e-5)
    xg = x.clone().requires_grad_(True)
    out = _mean_std(xg)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    out.sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()
    # a constant (e.g. all-zero after ReLU) channel has std ~0 and a finite gradient
    z = torch.zeros(1, 2, 4, 4, requires_grad=True)
    _mean_std(z).sum().backward()
    assert torch.isfinite(z.grad).all()  # type: ignore[arg-type]


def test_unknown_pooling_is_refused() -> None:
    spec = ModelSpec.from_dict({**ModelSpec.for_bands("smallcnn", BANDS).to_dict(),
                                "extra": {"pool": "max"}})  # fmt: skip
    with pytest.raises(ModelError, match="unknown SmallCNN pooling 'max'"):
        build_model(spec)


def test_models_saved_without_the_chip_statistics_term_load_as_trained(tmp_path: Path) -> None:
    spec = ModelSpec.from_dict(
        {**ModelSpec.for_bands("smallcnn", BANDS).to_dict(), "extra": {"pool": "meanstd"}}
    )
    torch.manual_seed(0)
    before = SmallCNN(len(BANDS), 10, pool="meanstd").eval()  # the head of 2026-11-26
    weights, _ = save_local(before, spec, tmp_path)
    loaded = load_local(weights, spec)
    assert isinstance(loaded, SmallCNN) and not loaded.stats and not hasattr(loaded, "stats_head")
    x = torch.randn(2, len(BANDS), 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), before(x))
    with pytest.raises(ModelError):  # nor do its weights pass for the new head's
        load_local(weights, ModelSpec.for_bands("smallcnn", BANDS))
