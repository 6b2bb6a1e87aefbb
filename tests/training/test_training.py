"""Training: the data path, the loop, every option's effect, bad input, and `train` end to end.

Each test uses its own sqlite MLflow store under tmp_path and checks no run is left RUNNING.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from app_package.eo.bands import DEFAULT_MODEL_BANDS, EUROSAT_CLASS_NAMES
from app_package.errors import AppPackageError, DataError, InputError, TrackingError
from app_package.model.networks import build_model, load_local
from app_package.model.spec import ModelSpec
from app_package.training.batches import ChipBatches, augment_batch
from app_package.training.config import TrainConfig, validate_config
from app_package.training.loop import fit, make_optimizer, make_scheduler, predict_logits
from app_package.training.train import train
from tests.conftest import SCHEMAS
from tests.support.datagen import make_chip
from tests.support.training import assert_no_run_left_running, make_catalog, quick_config, store

# ------------------------------------------------------------------ helpers (shared)


def synthetic(
    n_per_class: int = 6, bands: int = len(DEFAULT_MODEL_BANDS), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.stack([make_chip(c, rng, bands) for c in range(10) for _ in range(n_per_class)])
    y = np.repeat(np.arange(10), n_per_class).astype(np.int64)
    return x, y


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_catalog(tmp_path_factory.mktemp("train-data"), 5)


# ------------------------------------------------------------------ data path
def test_batches_normalise_by_band_name_and_augment_only_when_asked() -> None:
    x, y = synthetic(2)
    spec = ModelSpec.for_bands("smallcnn", ("B8A", "B02"))
    data = ChipBatches(x[:, :2], y, spec, torch.device("cpu"))
    idx = torch.arange(len(y))
    xb, yb = data.batch(idx)
    expected = (x[:, 0].astype(np.float32) - 2594.14) / 1231.59  # B8A statistics, first channel
    np.testing.assert_allclose(xb[:, 0].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(yb, torch.from_numpy(y))
    again, _ = data.batch(idx)
    assert torch.equal(xb, again), "without augmentation a batch is deterministic"
    aug, _ = data.batch(idx, augment=True, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(aug, xb)
    # augmentation only permutes pixels within each chip (flips/rotations)
    torch.testing.assert_close(aug.sum((2, 3)), xb.sum((2, 3)), rtol=1e-4, atol=1e-2)


def test_augment_batch_is_per_chip_dihedral() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4).repeat(64, 1, 1, 1)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    dihedral = []
    for k in range(4):
        r = torch.rot90(x[0], k, (-2, -1))
        dihedral += [r, r.flip(-1)]
    seen = set()
    for chip in out[::2]:
        matches = [i for i, d in enumerate(dihedral) if torch.equal(chip, d)]
        assert matches, "every augmented chip is a rotation/reflection of the original"
        seen.add(matches[0])
    assert len(seen) > 4, "chips get independent transforms"


def test_evaluation_is_never_augmented() -> None:
    x, y = synthetic(2)
    spec = ModelSpec.for_bands("smallcnn", TrainConfig(stac="", output=Path()).resolved_bands())
    data = ChipBatches(x[:, : len(spec.bands)], y, spec, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model(spec)
    a = predict_logits(model, data, amp=False)
    b = predict_logits(model, data, amp=False)
    assert torch.equal(a, b)


# ------------------------------------------------------------------ every option has an effect
def _fit(config: TrainConfig, n_per_class: int = 4) -> tuple[list[float], list[float], int, object]:
    x, y = synthetic(n_per_class)
    bands = config.resolved_bands()
    spec = ModelSpec.for_bands(config.arch, bands)
    torch.manual_seed(config.seed)
    model = build_model(spec)
    train_data = ChipBatches(x[:, : len(bands)], y, spec, torch.device("cpu"))
    val_data = ChipBatches(x[:20, : len(bands)], y[:20], spec, torch.device("cpu"))
    res = fit(model, train_data, val_data, config)
    return (
        [h.lr for h in res.history],
        [h.train_loss for h in res.history],
        len(res.history),
        res,
    )


def test_loop_options_change_the_run() -> None:
    base = TrainConfig(stac="x", output=Path("o"), epochs=3, batch_size=16, patience=0)
    lrs, losses, n, _ = _fit(base)
    assert n == 3
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[1] < lrs[0], "cosine schedule decays"
    # epochs
    assert _fit(replace(base, epochs=1))[2] == 1
    # lr
    assert _fit(replace(base, lr=5e-3))[0][0] == pytest.approx(5e-3)
    # schedule
    assert _fit(replace(base, lr_schedule="constant"))[0] == [1e-3] * 3
    step = _fit(replace(base, lr_schedule="step"))[0]
    assert step == pytest.approx([1e-3, 1e-4, 1e-5])
    # seed: same seed reproduces, another seed differs
    assert _fit(base)[1] == losses
    assert _fit(replace(base, seed=1))[1] != losses
    # augmentation and mixed precision change the training losses
    assert _fit(replace(base, augment=False))[1] != losses
    assert _fit(replace(base, radiometric=0.0))[1] != losses
    assert _fit(replace(base, amp=False))[1] != losses


def test_cli_flags_reach_the_config() -> None:
    from app_package.cli import build_parser

    base = ["train", "--stac", "x.json", "--output", "o"]
    args = build_parser().parse_args(base)
    assert args.refit and args.augment and args.amp and args.radiometric == 1.0
    args = build_parser().parse_args(
        [*base, "--no-refit", "--no-augment", "--no-amp", "--radiometric", "0.5"]
    )
    assert not args.refit and not args.augment and not args.amp and args.radiometric == 0.5


def training_batch_sizes(model: torch.nn.Module) -> list[int]:
    """The sizes of the batches `model` is trained on from now on (filled as it trains)."""
    sizes: list[int] = []

    def count(m: torch.nn.Module, args: tuple) -> None:
        if m.training:
            sizes.append(args[0].shape[0])

    model.register_forward_pre_hook(count)
    return sizes


def test_batch_size_sets_the_number_of_steps() -> None:
    x, y = synthetic(4)  # 40 chips
    spec = ModelSpec.for_bands("smallcnn", TrainConfig(stac="", output=Path()).resolved_bands())
    for bs, steps in ((16, 3), (8, 5)):
        model = build_model(spec)
        sizes = training_batch_sizes(model)
        data = ChipBatches(x, y, spec, torch.device("cpu"))
        cfg = TrainConfig(stac="x", output=Path("o"), epochs=1, batch_size=bs, refit=False)
        fit(model, data, data, cfg)
        assert len(sizes) == steps and max(sizes) == bs


def test_refit_retrains_on_train_and_validation_chips_for_the_best_epoch_count() -> None:
    x, y = synthetic(4)  # 40 chips: 30 train, 10 validation
    spec = ModelSpec.for_bands("smallcnn", TrainConfig(stac="", output=Path()).resolved_bands())
    train_data = ChipBatches(x[:30], y[:30], spec, torch.device("cpu"))
    val_data = ChipBatches(x[30:], y[30:], spec, torch.device("cpu"))
    cfg = TrainConfig(stac="x", output=Path("o"), epochs=3, batch_size=64, patience=0, amp=False)
    states = {}
    for refit in (False, True):
        torch.manual_seed(0)
        model = build_model(spec)
        sizes = training_batch_sizes(model)
        res = fit(model, train_data, val_data, replace(cfg, refit=refit))
        assert len(res.history) == 3 and 1 <= res.best_epoch <= 3
        # one batch per epoch: 3 epochs on the 30 training chips, then (refit) best_epoch
        # epochs on all 40 chips
        assert sizes == [30] * 3 + ([40] * res.best_epoch if refit else [])
        states[refit] = res.model.state_dict()
    assert not torch.equal(states[False]["head.2.weight"], states[True]["head.2.weight"])
    assert TrainConfig(stac="x", output=Path("o")).refit, "refit is the default recipe"


def test_optimizer_and_weight_decay_reach_the_optimizer() -> None:
    model = torch.nn.Linear(2, 2)
    base = TrainConfig(stac="x", output=Path("o"))
    assert isinstance(make_optimizer(model, base), torch.optim.AdamW)
    assert isinstance(make_optimizer(model, replace(base, optimizer="adam")), torch.optim.Adam)
    sgd = make_optimizer(model, replace(base, optimizer="sgd", weight_decay=0.05))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["weight_decay"] == 0.05


def test_the_chip_statistics_term_learns_faster_and_reads_texture() -> None:
    """The default SmallCNN's statistics term is stepped at CHIP_STATS_LR_MULT x the learning
    rate (every optimizer and schedule keeps the ratio); the rest at the rate itself. Its
    features see texture: two chips with equal band means and deviations differ in them."""
    from app_package.model.networks import SmallCNN, chip_stats
    from app_package.model.spec import CHIP_STATS_LR_MULT

    model = build_model(ModelSpec.for_bands("smallcnn", ("B02", "B03", "B04")))
    assert isinstance(model, SmallCNN)
    base = TrainConfig(stac="x", output=Path("o"), lr=2e-3, epochs=4)
    stats_params = {id(p) for p in model.stats_head.parameters()}
    assert CHIP_STATS_LR_MULT > 1
    for name in ("adamw", "adam", "sgd"):
        opt = make_optimizer(model, replace(base, optimizer=name))
        base_group, fast = opt.param_groups
        assert base_group["lr"] == 2e-3 and fast["lr"] == pytest.approx(2e-3 * CHIP_STATS_LR_MULT)
        assert {id(p) for p in fast["params"]} == stats_params
        assert len(base_group["params"]) + len(fast["params"]) == len(list(model.parameters()))
    opt = make_optimizer(model, base)
    sched = make_scheduler(opt, base)
    opt.step()
    sched.step()
    assert opt.param_groups[1]["lr"] == pytest.approx(
        opt.param_groups[0]["lr"] * CHIP_STATS_LR_MULT
    )
    smooth = torch.zeros(1, 1, 8, 8)
    smooth[..., 4:, :] = 2.0  # two halves
    checker = (torch.arange(8).view(-1, 1) + torch.arange(8)).remainder(2).float() * 2
    checker = checker.view(1, 1, 8, 8)  # same mean (1) and deviation (1), busier texture
    a, b = chip_stats(smooth), chip_stats(checker)
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert b[0, 2] > 5 * a[0, 2]


def test_patience_stops_early_when_validation_stops_improving() -> None:
    # an absurd learning rate makes the validation loss blow up after the first epoch
    cfg = TrainConfig(stac="x", output=Path("o"), epochs=6, optimizer="sgd", lr=1e4,
                      lr_schedule="constant", amp=False)  # fmt: skip
    assert _fit(replace(cfg, patience=2))[2] < 6
    assert _fit(replace(cfg, patience=0))[2] == 6


def test_arch_and_bands_shape_the_model() -> None:
    *_, res = _fit(TrainConfig(stac="x", output=Path("o"), epochs=1, bands=("B04", "B03", "B02")))
    first = next(m for m in res.model.modules() if isinstance(m, torch.nn.Conv2d))  # type: ignore[attr-defined]
    assert first.in_channels == 3
    spec = ModelSpec.for_bands("resnet18", ("B02",))
    assert type(build_model(spec)).__name__ == "ResNet18"


# ------------------------------------------------------------------ bad input: fails up front
@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"bands": ("B02", "B99")}, "unknown band 'B99'"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"lr": -0.1}, "learning rate must be a positive"),
        ({"batch_size": 0}, "batch size"),
        ({"optimizer": "lbfgs"}, "unknown optimizer"),
        ({"lr_schedule": "poly"}, "unknown LR schedule"),
        ({"arch": "vgg"}, "unknown architecture"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "nothing would be left"),
        ({"device": "cuda:0" if not torch.cuda.is_available() else "tpu"}, "device"),
        ({"patience": -1}, "patience"),
    ],
)
def test_bad_options_fail_before_any_run(tmp_path: Path, change: dict, match: str) -> None:
    cfg = quick_config("does-not-matter.json", tmp_path, **change)
    with pytest.raises(InputError, match=match):
        train(cfg)
    assert not (tmp_path / "mlflow.db").exists(), "no store touched, no run started"
    assert not cfg.output.exists()


def test_unreachable_stac_and_server(tmp_path: Path, catalog: str) -> None:
    cfg = quick_config(str(tmp_path / "nowhere" / "catalog.json"), tmp_path)
    with pytest.raises(AppPackageError):
        train(cfg)
    assert_no_run_left_running(store(tmp_path))
    assert not cfg.output.exists()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = quick_config(catalog, tmp_path, tracking_uri=f"http://127.0.0.1:{port}")
    with pytest.raises(TrackingError, match="unreachable"):
        train(cfg)
    assert not cfg.output.exists()


def test_empty_class_and_too_few_samples(tmp_path: Path) -> None:
    counts = {c: 0 if c == "River" else 4 for c in EUROSAT_CLASS_NAMES}
    stac = make_catalog(tmp_path / "a", counts)
    with pytest.raises(DataError, match="River"):
        train(quick_config(stac, tmp_path))
    few = make_catalog(tmp_path / "b", 2)
    with pytest.raises(AppPackageError, match=r"too few|at least"):
        train(quick_config(few, tmp_path))
    assert_no_run_left_running(store(tmp_path))
    assert not (tmp_path / "out").exists()


def test_cli_maps_bad_input_to_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from app_package.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--stac", "x.json", "--output", str(tmp_path / "o"), "--epochs", "0",
              "--tracking-uri", store(tmp_path)])  # fmt: skip
    assert e.value.code == 2
    assert "epochs must be at least 1" in capsys.readouterr().err


def test_validate_config_canonicalises_bands() -> None:
    cfg = validate_config(TrainConfig(stac="x", output=Path("o"), bands=("red", "b8a")))
    assert cfg.bands == ("B04", "B8A")


# ------------------------------------------------------------------ the whole run
def test_train_tracks_registers_and_writes_a_valid_mlm_catalog(
    tmp_path: Path, catalog: str
) -> None:
    from mlflow.tracking import MlflowClient

    from app_package.model.source import load_model
    from app_package.stac.validation import validate_catalog
    from app_package.training.tracking import best_model_uri

    messages: list[tuple[float, str]] = []
    cfg = quick_config(catalog, tmp_path, patience=0)
    result = train(cfg, lambda p, m: messages.append((p, m)))
    uri = store(tmp_path)
    assert_no_run_left_running(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "2"
    assert run.data.params["bands"].split(",")[8] == "B8A"
    assert [m.step for m in client.get_metric_history(result.run_id, "val_accuracy")] == [1, 2]
    assert [m.step for m in client.get_metric_history(result.run_id, "train_loss")] == [1, 2]
    assert run.data.metrics["test_accuracy"] == pytest.approx(result.test_metrics["accuracy"])
    assert "test_f1_SeaLake" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "metrics")}
    assert {"metrics/confusion_matrix.png", "metrics/confusion_matrix.json"} <= artifacts
    assert run.inputs is not None
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest
    tags = {t.key: t.value for t in inputs[0].tags}
    assert tags["stac"] == catalog
    assert sum(json.loads(tags["class_counts"]).values()) == 50
    # registry: version 1 is the champion, best-model resolves it and it loads
    assert result.model_uri == "models:/eurosat-classifier/1" and result.is_champion
    assert str(client.get_model_version_by_alias("eurosat-classifier", "champion").version) == "1"
    champion = best_model_uri(tracking_uri=uri)
    assert champion == "models:/eurosat-classifier@champion"
    model, spec = load_model(champion, tracking_uri=uri)
    assert spec.bands[8] == "B8A"
    # output catalog: validates offline; the portable weights give the logged model's outputs
    assert validate_catalog(result.catalog, SCHEMAS) == 2
    item_dir = result.catalog.parent / "eurosat-classifier-v1"
    local = load_local(item_dir / "model.pt", spec)
    x = torch.randn(3, len(spec.bands), 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(local(x), model(x), rtol=1e-4, atol=1e-4)
    metrics = json.loads((item_dir / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(result.test_metrics["accuracy"])
    assert (item_dir / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    # progress: monotone, ends at 100
    percents = [p for p, _ in messages]
    assert percents == sorted(percents) and percents[-1] == 100.0


def test_data_and_tracking_options_change_the_run(tmp_path: Path, catalog: str) -> None:
    from mlflow.tracking import MlflowClient

    other_store = tmp_path / "other"
    other_store.mkdir()
    cfg = quick_config(
        catalog, tmp_path, epochs=1, bands=("B04", "B03", "B02"), samples_per_class=4,
        val_fraction=0.25, test_fraction=0.25, tracking_uri=store(other_store),
        experiment="exp-b", model_name="model-b", seed=3,
    )  # fmt: skip
    r = train(cfg)
    uri = store(other_store)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(r.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "exp-b"
    assert r.model_uri == "models:/model-b/1"
    p = run.data.params
    assert p["bands"] == "B04,B03,B02"
    assert p["dataset_chips"] == "40"  # samples_per_class × 10
    assert (p["n_train"], p["n_val"], p["n_test"]) == ("20", "10", "10")
    assert p["seed"] == "3"
    assert not (tmp_path / "mlflow.db").exists(), "the tracking URI was honoured"
    item = json.loads(next(r.catalog.parent.glob("*/model-b-v1.json")).read_text())
    assert item["properties"]["mlm:input"][0]["bands"] == ["B04", "B03", "B02"]
    assert_no_run_left_running(uri)
