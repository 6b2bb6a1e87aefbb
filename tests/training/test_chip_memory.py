"""The chips are held once: loaded into one array, split and refit by index, never copied whole.

At EuroSAT's 27,000 chips the array is 2.7 GB; each copy of it (splits, the refit's train +
validation, the ONNX check's test chips) used to add up to that again (bench/train_scale_bench.py
measures the peak).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app_package.data.dataset import LabelledChips, load_labelled_chips
from app_package.eo.bands import DEFAULT_MODEL_BANDS
from app_package.errors import DataError
from app_package.model.spec import ModelSpec
from app_package.training.batches import ChipBatches
from app_package.training.train import train
from tests.support.datagen import make_chip
from tests.support.training import assert_no_run_left_running, make_catalog, quick_config, store

CPU = torch.device("cpu")
SPEC = ModelSpec.for_bands("smallcnn", DEFAULT_MODEL_BANDS)


def _chips(n_per_class: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.stack(
        [make_chip(c, rng, len(SPEC.bands)) for c in range(10) for _ in range(n_per_class)]
    )
    return x, np.repeat(np.arange(10), n_per_class).astype(np.int64)


def _same_batches(a: ChipBatches, b: ChipBatches) -> None:
    """Both sets serve the same chips and labels, also augmented with the same generator."""
    assert a.n == b.n and torch.equal(a.y, b.y)
    idx = torch.randperm(a.n, generator=torch.Generator().manual_seed(0))[:16]
    ga, gb = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    xa, ya = a.batch(idx, augment=True, generator=ga, radiometric=1.0)
    xb, yb = b.batch(idx, augment=True, generator=gb, radiometric=1.0)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(a.batch(torch.arange(a.n))[0], b.batch(torch.arange(b.n))[0])


def test_subsets_index_the_stored_chips_and_serve_what_copies_would() -> None:
    x, y = _chips()
    every = ChipBatches(x, y, SPEC, CPU)
    tr_idx, va_idx = np.arange(0, 60, 2), np.arange(1, 60, 4)
    tr, va = every.subset(tr_idx), every.subset(va_idx)
    both = tr.concat(va)  # the refit's train + validation chips
    for d in (every, tr, va, both):
        assert d.xn is x, "a split or the refit set copied the chips"
    _same_batches(tr, ChipBatches(x[tr_idx], y[tr_idx], SPEC, CPU))
    rows = np.concatenate([tr_idx, va_idx])
    _same_batches(both, ChipBatches(x[rows], y[rows], SPEC, CPU))
    # a subset of a subset picks rows of the stored chips
    _same_batches(
        tr.subset(np.array([2, 0, 5])), ChipBatches(x[[4, 0, 10]], y[[4, 0, 10]], SPEC, CPU)
    )


def test_sets_of_separate_arrays_still_concatenate() -> None:
    x, y = _chips()
    joined = ChipBatches(x[:30], y[:30], SPEC, CPU).concat(ChipBatches(x[30:], y[30:], SPEC, CPU))
    _same_batches(joined, ChipBatches(x, y, SPEC, CPU))


def test_labels_must_match_the_chips() -> None:
    x, y = _chips()
    with pytest.raises(DataError, match="60 chips but 59 labels"):
        ChipBatches(x, y[:-1], SPEC, CPU)


def test_loading_reads_each_chip_into_one_preallocated_array(tmp_path: Path) -> None:
    stac = make_catalog(tmp_path, 10)  # 100 chips
    tracemalloc.start()
    try:
        chips = load_labelled_chips(stac, bands=DEFAULT_MODEL_BANDS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chips.x.shape == (100, len(DEFAULT_MODEL_BANDS), 64, 64)
    assert chips.x.flags.owndata and chips.x.flags.c_contiguous
    # the array and the listing's small objects: a second copy (a list of chips stacked, a
    # float conversion) would at least double it
    assert peak < 1.25 * chips.x.nbytes, (
        f"loading peaked at {peak / chips.x.nbytes:.2f} × the chips"
    )
    assert len(chips.bboxes) == 100
    assert all(b is not None and len(b) == 4 for b in chips.bboxes)


def test_train_holds_the_chips_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through `train`: the splits and the refit set index the loaded array; the ONNX check
    runs on the test chips a batch at a time."""
    import app_package.data.dataset as dataset
    import app_package.model.onnx as onnx
    import app_package.training.train as train_module

    stac = make_catalog(tmp_path / "data", 5)  # 50 chips: 10 of them test chips
    loaded: list[LabelledChips] = []
    fitted: list[ChipBatches] = []
    joined: list[ChipBatches] = []
    checked: list[np.ndarray] = []
    real_load, real_fit = dataset.load_labelled_chips, train_module.fit
    real_concat, real_verify = ChipBatches.concat, onnx.verify_onnx

    def load(*args: Any, **kwargs: Any) -> LabelledChips:
        loaded.append(real_load(*args, **kwargs))
        return loaded[-1]

    def fit(model: Any, train_data: ChipBatches, val_data: ChipBatches, *a: Any, **k: Any) -> Any:
        fitted.extend((train_data, val_data))
        return real_fit(model, train_data, val_data, *a, **k)

    def concat(self: ChipBatches, other: ChipBatches) -> ChipBatches:
        joined.append(real_concat(self, other))
        return joined[-1]

    def verify(path: Path, model: Any, spec: ModelSpec, chips: np.ndarray, **k: Any) -> float:
        checked.append(chips)
        return real_verify(path, model, spec, chips, **k)

    monkeypatch.setattr(dataset, "load_labelled_chips", load)
    monkeypatch.setattr(train_module, "fit", fit)
    monkeypatch.setattr(train_module, "VERIFY_BATCH", 4)
    monkeypatch.setattr(ChipBatches, "concat", concat)
    monkeypatch.setattr(onnx, "verify_onnx", verify)
    train(quick_config(stac, tmp_path, epochs=1, patience=0))
    assert_no_run_left_running(store(tmp_path))
    (chips,) = loaded
    assert len(joined) == 1, "the refit did not run"
    for d in (*fitted, *joined):
        assert d.xn is chips.x, "a split or the refit set copied the chips"
    assert joined[0].n == fitted[0].n + fitted[1].n == 40
    # the 10 test chips checked 4 at a time, each batch with the same (largest-logit) chip first
    assert [len(c) for c in checked] == [5, 5, 3]
    assert all(np.array_equal(c[0], checked[0][0]) for c in checked)
    refit_rows = joined[0].index
    assert refit_rows is not None
    test_rows = np.setdiff1d(np.arange(len(chips.x)), refit_rows)  # sorted, as the split is
    assert np.array_equal(np.concatenate([c[1:] for c in checked]), chips.x[test_rows])


def test_each_onnx_check_batch_gets_the_tolerance_of_the_whole_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`verify_onnx`'s tolerance scales with the largest logit of the chips it is given: every
    batch carries the chip with the largest logit of all, so it sees the same scale as the set."""
    import app_package.model.onnx as onnx
    import app_package.training.train as train_module
    from app_package.model.networks import build_model, normalise

    torch.manual_seed(0)
    model = build_model(SPEC).eval()
    x, _ = _chips()
    rows = np.arange(3, 60)
    scales: list[float] = []

    def fake_verify(path: Path, net: Any, spec: ModelSpec, chips: np.ndarray) -> float:
        with torch.inference_mode():
            scales.append(float(net(normalise(chips, spec)).abs().max()))
        return 0.0

    monkeypatch.setattr(onnx, "verify_onnx", fake_verify)
    monkeypatch.setattr(train_module, "VERIFY_BATCH", 7)
    train_module.verify_onnx_in_batches(Path("model.onnx"), model, SPEC, x, rows)
    with torch.inference_mode():
        whole = float(model(normalise(x[rows], SPEC)).abs().max())
    assert len(scales) == 9  # 57 chips, 7 at a time
    assert scales == pytest.approx([whole] * 9, rel=1e-5)
