"""Radiometric augmentation: the shifts, their use in training batches, and the option."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from app_package.eo.bands import DEFAULT_MODEL_BANDS
from app_package.errors import InputError
from app_package.model.spec import ModelSpec
from app_package.training.batches import ChipBatches
from app_package.training.config import TrainConfig, validate_config
from app_package.training.radiometry import (
    SCENARIOS_BY_NAME,
    SHIFT_SCENARIOS,
    apply_shift,
    haze_shape,
    radiometric_jitter,
)

BANDS = DEFAULT_MODEL_BANDS


def test_haze_is_largest_in_the_blue_and_falls_with_wavelength() -> None:
    h = haze_shape(("B01", "B02", "B04", "B08", "B12"))
    assert h[1] == pytest.approx(1.0)
    assert list(h) == sorted(h, reverse=True)
    assert h[-1] < 0.06  # 2.19 µm: (0.49 / 2.19)^2


def test_jitter_off_is_the_identity_and_on_spans_gains_and_offsets() -> None:
    g, o = radiometric_jitter(5, BANDS, 0.0, np.random.default_rng(0))
    assert (g == 1).all() and (o == 0).all() and g.shape == (5, 12)
    g, o = radiometric_jitter(4000, BANDS, 1.0, np.random.default_rng(0))
    assert g.dtype == np.float32 and g.shape == o.shape == (4000, 12)
    assert 0.45 < np.percentile(g, 2.5) < 0.75 and 1.3 < np.percentile(g, 97.5) < 2.2
    blue = o[:, BANDS.index("B02")]
    assert blue.min() < -250 and blue.max() > 850  # haze added and removed
    # the same haze draw for every band of a chip, scaled by wavelength
    np.testing.assert_allclose(o[:, BANDS.index("B04")], blue * haze_shape(("B04",))[0], rtol=1e-5)
    # stronger spreads more
    g2, _ = radiometric_jitter(4000, BANDS, 2.0, np.random.default_rng(0))
    assert np.log(g2).std() > 1.8 * np.log(g).std()


def test_scenarios_shift_chips_as_described_and_keep_nodata_out() -> None:
    assert SHIFT_SCENARIOS[0].name == "clean"
    x = np.full((1, len(BANDS), 2, 2), 1000, np.uint16)
    assert (apply_shift(x, SCENARIOS_BY_NAME["clean"], BANDS) == x).all()
    winter = apply_shift(x, SCENARIOS_BY_NAME["winter"], BANDS)
    assert winter[0, BANDS.index("B02"), 0, 0] == 1200  # 1000 × 0.6 + 600
    assert winter[0, BANDS.index("B12"), 0, 0] < 650  # little haze in the SWIR
    dark = np.full((1, len(BANDS), 1, 1), 100, np.uint16)
    l2a = apply_shift(dark, SCENARIOS_BY_NAME["l2a"], BANDS)
    assert l2a.min() >= 1  # never 0 (nodata)


def _spec() -> ModelSpec:
    return ModelSpec.for_bands("smallcnn", BANDS)


def test_batches_apply_the_jitter_reproducibly_and_only_when_asked() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(500, 3000, (8, len(BANDS), 64, 64)).astype(np.uint16)
    data = ChipBatches(x, np.arange(8) % 10, _spec(), torch.device("cpu"))
    idx = torch.arange(8)
    plain, _ = data.batch(idx)
    again, _ = data.batch(idx, radiometric=0.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain, again)
    a, _ = data.batch(idx, radiometric=1.0, generator=torch.Generator().manual_seed(1))
    b, _ = data.batch(idx, radiometric=1.0, generator=torch.Generator().manual_seed(1))
    c, _ = data.batch(idx, radiometric=1.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # per chip and band an affine change of the normalised chip: correlation 1, other level
    for n in range(3):
        for k in range(len(BANDS)):
            p, q = plain[n, k].flatten().numpy(), a[n, k].flatten().numpy()
            assert np.corrcoef(p, q)[0, 1] > 0.9999
    assert not torch.allclose(plain.mean((2, 3)), a.mean((2, 3)), atol=1e-2)


def test_batches_refuse_chips_with_another_band_count() -> None:
    from app_package.errors import DataError

    x = np.ones((2, 13, 64, 64), np.uint16)
    with pytest.raises(DataError, match="12 bands"):
        ChipBatches(x, np.zeros(2), _spec(), torch.device("cpu"))


def test_the_strength_is_checked_and_defaults_to_one() -> None:
    c = TrainConfig(stac="x", output=Path("o"))
    assert c.radiometric == 1.0 and c.params()["radiometric"] == 1.0
    assert validate_config(replace(c, radiometric=0.0)).radiometric == 0.0
    for bad in (-0.1, 3.5, float("nan")):
        with pytest.raises(InputError, match="radiometric") as e:
            validate_config(replace(c, radiometric=bad))
        assert e.value.field == "radiometric"


def test_default_bands_are_the_twelve_l1c_and_l2a_share() -> None:
    assert TrainConfig(stac="x", output=Path("o")).resolved_bands() == BANDS
    assert "B10" not in BANDS and len(BANDS) == 12 and BANDS[8] == "B8A"
