"""A whole training run: `train` is the one library entry point that the CLI, the OGC process
and the CWL tool all call. It loads and splits the chips, runs the loop, tracks the run in
MLflow (`tracking`) and writes the output STAC catalog with its MLM item (`mlm`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app_package.eo.bands import EUROSAT_CLASS_NAMES
from app_package.errors import DataError
from app_package.model.spec import ModelSpec
from app_package.training import checkpoint
from app_package.training.batches import ChipBatches
from app_package.training.config import TrainConfig, validate_config
from app_package.training.loop import EpochStats, LoopState, fit, predict_logits
from app_package.training.metrics import classification_report
from app_package.training.plots import confusion_matrix_png
from app_package.util.outputs import atomic_dir, check_output_free
from app_package.util.progress import ProgressCallback, no_progress, scaled

if TYPE_CHECKING:
    from torch import nn

    from app_package.training import tracking

logger = logging.getLogger(__name__)

# test chips per ONNX check (`verify_onnx_in_batches`): ~140 MB of activations and buffers
VERIFY_BATCH = 128


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_uri: str  # models:/<name>/<version>
    version: str
    is_champion: bool
    test_metrics: dict[str, Any]
    catalog: Path  # output/catalog.json
    epochs_run: int
    history: tuple[EpochStats, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_data(y: np.ndarray, config: TrainConfig) -> Splits:
    """Stratified train/val/test indices; every class must reach every split."""
    from app_package.data.dataset import stratified_split

    tr, va, te = stratified_split(
        y, val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed
    )
    for name, idx in (("train", tr), ("validation", va), ("test", te)):
        if len(idx) == 0:
            raise DataError(
                f"the {name} split is empty ({len(y)} chips, val fraction "
                f"{config.val_fraction}, test fraction {config.test_fraction}): "
                "use more samples per class or other fractions"
            )
    return Splits(np.asarray(tr), np.asarray(va), np.asarray(te))


def check_classes(counts: dict[str, int], source: str) -> None:
    """Every EuroSAT class needs chips: a model cannot learn a class it never sees."""
    empty = [c for c in EUROSAT_CLASS_NAMES if counts.get(c, 0) == 0]
    if empty:
        raise DataError(
            f"class(es) {', '.join(empty)} have no chips in {source}: every one of the "
            f"{len(EUROSAT_CLASS_NAMES)} EuroSAT classes needs at least 3 chips"
        )
    few = {c: n for c, n in counts.items() if 0 < n < 3}
    if few:
        raise DataError(
            f"too few chips to split into train/validation/test in {source}: "
            + ", ".join(f"{c} has {n}" for c, n in few.items())
            + " (at least 3 per class)"
        )


def train(
    config: TrainConfig,
    progress: ProgressCallback = no_progress,
    checkpoints: Path | None = None,
) -> TrainResult:
    """Validate, load the chips, train, evaluate, track in MLflow and write the output catalog.

    Every input is checked before training starts; a failure after the MLflow run started ends
    that run as FAILED, and the output folder is only created (atomically) on success.

    With a `checkpoints` folder, the loop's state is saved there before the first epoch and
    after each one (`training.checkpoint`); a run given a folder with a checkpoint of the same
    settings and data resumes from it, in the same MLflow run (the caller removes the folder).
    """
    import torch

    from app_package.data.dataset import load_labelled_chips
    from app_package.model.networks import build_model, resolve_device, save_local
    from app_package.model.onnx import export_onnx
    from app_package.model.source import STAC_ITEM_TAG
    from app_package.model.spec import ONNX_FILE
    from app_package.training import mlm, tracking

    config = validate_config(config)
    bands = config.resolved_bands()
    check_output_free(config.output)
    device = resolve_device(config.device)
    tracker = tracking.Tracker(config.tracking_uri, config.experiment)  # raises if unreachable
    progress(0.0, f"loading chips from {config.stac}")
    chips = load_labelled_chips(
        config.stac,
        bands=bands,
        samples_per_class=config.samples_per_class,
        seed=config.seed,
        progress=scaled(progress, 0.0, 10.0),
    )
    check_classes(chips.counts(), chips.source)
    chips_bbox = mlm.bbox_of(b for b in chips.bboxes if b is not None)
    splits = split_data(chips.y, config)
    spec = ModelSpec.for_bands(config.arch, bands)
    torch.manual_seed(config.seed)
    model = build_model(spec)
    # the splits index into the one array of chips: none of them is copied
    every = ChipBatches(chips.x, chips.y, spec, device, channels_last=config.channels_last)
    data = {
        name: every.subset(idx)
        for name, idx in (("train", splits.train), ("val", splits.val), ("test", splits.test))
    }
    split_counts = {k: int(v.n) for k, v in data.items()}
    digest = chips.digest()
    fp = checkpoint.fingerprint(config.params(), digest)
    saved = _resumable(checkpoints, fp, tracker)
    with tracker.start_run(run_id=saved.run_id if saved else None) as run:
        if saved is None:
            run.log_params(
                {
                    **config.params(),
                    "device_resolved": str(device),
                    "torch_version": torch.__version__,
                    **{f"n_{k}": v for k, v in split_counts.items()},
                }
            )
            run.log_dataset(
                source=config.stac,
                digest=digest,
                counts=chips.counts(),
                split_counts=split_counts,
                bands=bands,
            )
        else:
            run.log_missing_epochs(saved.state.history)
            message = (
                f"resumed after an interruption: {saved.state.epoch} of {config.epochs} "
                f"epochs done, MLflow run {run.run_id} continued"
            )
            logger.warning("training %s", message)
            progress(10.0, message)
        on_state = None
        if checkpoints is not None:
            folder = checkpoints

            def on_state(state: LoopState) -> None:
                checkpoint.save_checkpoint(folder, checkpoint.Checkpoint(state, run.run_id, fp))

        result = fit(
            model,
            data["train"],
            data["val"],
            config,
            on_epoch=run.log_epoch,
            progress=scaled(progress, 10.0, 85.0),
            on_state=on_state,
            resume=saved.state if saved else None,
        )
        progress(86.0, "evaluating on the test split")
        test_logits = predict_logits(result.model, data["test"], amp=config.amp)
        y_pred = test_logits.argmax(1).cpu().numpy()
        report = classification_report(chips.y[splits.test], y_pred, spec.classes)
        report["epochs_run"] = len(result.history)
        report["best_epoch"] = result.best_epoch
        report["stopped_early"] = result.stopped_early
        report["refit_epochs"] = result.best_epoch if config.refit else 0
        run.log_test_metrics(report)
        cpu_model = result.model.to("cpu").to(memory_format=torch.contiguous_format).float()
        progress(88.0, "exporting the model to ONNX")
        onnx_dir = Path(tempfile.mkdtemp(prefix="onnx-"))
        try:
            onnx = export_onnx(cpu_model, spec, onnx_dir / ONNX_FILE)
            verify_onnx_in_batches(onnx, cpu_model, spec, chips.x, splits.test)  # same classes
            progress(90.0, f"logging and registering the model as {config.model_name}")
            example = chips.x[splits.test[:2]]
            registered = run.log_model(cpu_model, spec, example, config.model_name, onnx=onnx)
            progress(95.0, "writing the output catalog")
            item_id = mlm.item_id(config.model_name, registered.version)
            with atomic_dir(config.output) as tmp:
                item_dir = tmp / item_id
                save_local(cpu_model, spec, item_dir)
                shutil.copyfile(onnx, item_dir / ONNX_FILE)
                (item_dir / mlm.METRICS_FILE).write_text(json.dumps(report, indent=2))
                (item_dir / mlm.CONFUSION_PNG).write_bytes(
                    confusion_matrix_png(report["confusion_matrix"], spec.classes)
                )
                mlm.write_catalog(
                    tmp,
                    mlm.ModelItemInfo(
                        item_id=item_id,
                        spec=spec,
                        hyperparameters={
                            k: v
                            for k, v in config.params().items()
                            if k not in ("output", "tracking_uri", "stac")
                        },
                        test_accuracy=float(report["accuracy"]),
                        macro_f1=float(report["macro_f1"]),
                        total_parameters=sum(p.numel() for p in cpu_model.parameters()),
                        training_device=device.type,
                        framework_version=torch.__version__.split("+")[0],
                        run_id=run.run_id,
                        run_url=run.run_url,
                        model_uri=registered.model_uri,
                        training_source=_absolute(config.stac),
                        batch_size=config.batch_size,
                        training_chips=len(chips.y),
                        bbox=chips_bbox,
                    ),
                )
        finally:
            shutil.rmtree(onnx_dir, ignore_errors=True)
        is_champion = run.promote_if_better(registered, float(report["accuracy"]))
        run.set_tag("output_catalog", str(config.output / "catalog.json"))
        # the final path of the MLM item (the folder was written under a temporary name)
        run.set_tag(STAC_ITEM_TAG, str((config.output / item_id / f"{item_id}.json").resolve()))
    progress(100.0, f"done: test accuracy {report['accuracy']:.3f}")
    return TrainResult(
        run_id=run.run_id,
        model_uri=registered.model_uri,
        version=registered.version,
        is_champion=is_champion,
        test_metrics={k: report[k] for k in ("accuracy", "macro_f1", "n", "per_class")},
        catalog=config.output / "catalog.json",
        epochs_run=len(result.history),
        history=tuple(result.history),
    )


def _resumable(
    folder: Path | None, fingerprint: str, tracker: tracking.Tracker
) -> checkpoint.Checkpoint | None:
    """The checkpoint to resume from: one in `folder` of these settings and data whose MLflow
    run can be continued; else None (training starts from scratch)."""
    saved = checkpoint.load_checkpoint(folder, fingerprint) if folder is not None else None
    if saved is not None and not tracker.can_continue(saved.run_id):
        logger.warning(
            "checkpoint in %s names MLflow run %s, which %s cannot continue: training starts "
            "from scratch",
            folder,
            saved.run_id,
            tracker.uri,
        )
        return None
    return saved


def verify_onnx_in_batches(
    onnx: Path, model: nn.Module, spec: ModelSpec, chips: np.ndarray, rows: np.ndarray
) -> None:
    """`verify_onnx` on the chips at `rows`, `VERIFY_BATCH` at a time: all at once, the network's
    activations for EuroSAT's 5,400 test chips take ~2.7 GB (0.5 MB a chip).

    Its tolerance grows with the largest logit among the chips it is given, so every batch also
    carries the chip with the largest logit of all: each batch is held to the tolerance of the
    whole set, as when it was checked in one go (a batch of small logits alone would fail on
    differences the whole set allows).
    """
    import torch

    from app_package.model.networks import normalise
    from app_package.model.onnx import verify_onnx

    batches = [rows[i : i + VERIFY_BATCH] for i in range(0, len(rows), VERIFY_BATCH)]
    if len(batches) <= 1:
        verify_onnx(onnx, model, spec, chips[rows])
        return
    with torch.inference_mode():
        largest = torch.cat(
            [model.eval()(normalise(chips[b], spec)).float().abs().amax(1) for b in batches]
        )
    anchor = rows[int(largest.argmax())]
    for b in batches:
        verify_onnx(onnx, model, spec, chips[np.concatenate([[anchor], b])])


def _absolute(ref: str) -> str:
    """A STAC reference as links need it: URLs as they are, local paths made absolute."""
    if "://" in ref:
        return ref
    return str(Path(ref).resolve())
