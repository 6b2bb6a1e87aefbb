"""Training a EuroSAT classifier: configuration, the in-memory data path and the loop.

The loop does not know about MLflow: it reports each epoch through a callback. `train` is the one
library entry point that the CLI, the OGC process and the CWL tool all call; it wires the loop to
`app_package.training.tracking` (MLflow) and writes the output STAC catalog
(`app_package.training.mlm`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app_package.defaults import MODEL_NAME
from app_package.eo.bands import EUROSAT_CLASS_NAMES, parse_bands
from app_package.errors import DataError, InputError
from app_package.model.spec import ARCHITECTURES, ModelSpec
from app_package.util.progress import ProgressCallback, no_progress, scaled

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

OPTIMIZERS: tuple[str, ...] = ("adamw", "adam", "sgd")
LR_SCHEDULES: tuple[str, ...] = ("cosine", "step", "constant")
EVAL_BATCH_SIZE = 512


@dataclass(frozen=True)
class TrainConfig:
    """Every input of a training run; each one has an effect (tests/test_training.py proves it)."""

    stac: str
    output: Path
    bands: tuple[str, ...] | None = None  # None = all 13
    arch: str = "smallcnn"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    patience: int = 5  # epochs without val-loss improvement before stopping; 0 = never stop early
    # after early stopping: retrain from the same initial weights on train + validation chips for
    # the best epoch count, so the final model also learns from the validation chips
    refit: bool = True
    samples_per_class: int | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    experiment: str = "eurosat"
    model_name: str = MODEL_NAME
    augment: bool = True  # random flips and 90° rotations of training chips
    amp: bool = True  # bf16 autocast (CPU with AVX512-BF16/AMX, CUDA)
    channels_last: bool = True

    def resolved_bands(self) -> tuple[str, ...]:
        return parse_bands(self.bands)

    def params(self) -> dict[str, Any]:
        """Hyperparameters and inputs as flat, loggable values."""
        d = asdict(self)
        d["output"] = str(self.output)
        d["bands"] = ",".join(self.resolved_bands())
        return d


def validate_config(config: TrainConfig) -> TrainConfig:
    """Check every option before anything is loaded or trained; returns the canonical config."""
    bands = parse_bands(config.bands)
    if config.arch not in ARCHITECTURES:
        raise InputError(
            f"unknown architecture {config.arch!r}: choose one of {', '.join(ARCHITECTURES)}"
        )
    if config.epochs <= 0:
        raise InputError(f"epochs must be at least 1 (got {config.epochs})")
    if config.batch_size <= 0:
        raise InputError(f"batch size must be at least 1 (got {config.batch_size})")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise InputError(f"learning rate must be a positive number (got {config.lr})")
    if not (config.weight_decay >= 0 and math.isfinite(config.weight_decay)):
        raise InputError(f"weight decay must be zero or positive (got {config.weight_decay})")
    if config.optimizer not in OPTIMIZERS:
        raise InputError(
            f"unknown optimizer {config.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
        )
    if config.lr_schedule not in LR_SCHEDULES:
        raise InputError(
            f"unknown LR schedule {config.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}"
        )
    if config.patience < 0:
        raise InputError(f"patience must be 0 (off) or more epochs (got {config.patience})")
    if config.samples_per_class is not None and config.samples_per_class < 3:
        raise InputError(
            f"samples per class must be at least 3 (train, validation, test; "
            f"got {config.samples_per_class})"
        )
    for name, v in (("val", config.val_fraction), ("test", config.test_fraction)):
        if not 0 < v < 1:
            raise InputError(f"{name} fraction must lie strictly between 0 and 1 (got {v})")
    if config.val_fraction + config.test_fraction >= 1:
        raise InputError(
            f"val fraction + test fraction must be below 1 "
            f"(got {config.val_fraction} + {config.test_fraction}): nothing would be left to train"
        )
    if not config.stac.strip():
        raise InputError("no STAC reference given: pass --stac with a catalog path or URL")
    if not config.experiment.strip():
        raise InputError("experiment name is empty: pass --experiment NAME")
    if not config.model_name.strip():
        raise InputError("registered model name is empty: pass --model-name NAME")
    from app_package.model.networks import resolve_device

    resolve_device(config.device)
    return replace(config, bands=bands, output=Path(config.output))


# ------------------------------------------------------------------ data path
class ChipBatches:
    """Chips held once in memory as uint16 (on the training device), served as normalised batches.

    Normalisation uses the spec's per-band statistics (looked up by band name); augmentation
    (random flips and transposes = the 8 rotations/reflections) is applied on whole batches.
    On the CPU the batch is gathered, augmented (still uint16) and normalised straight into a
    channels_last float32 buffer with numpy, several times faster than torch's uint16 kernels.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        spec: ModelSpec,
        device: torch.device,
        *,
        channels_last: bool = True,
    ) -> None:
        import torch

        if x.dtype != np.uint16:
            raise DataError(f"chips must be uint16 DNs, got {x.dtype}")
        self.device = device
        self.n = int(x.shape[0])
        self.channels_last = channels_last
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        std = np.asarray(spec.std, dtype=np.float32)
        mean = np.asarray(spec.mean, dtype=np.float32)
        self._scale_np = 1.0 / std
        self._shift_np = mean / std
        self.xn: np.ndarray | None = None
        self.x: torch.Tensor | None = None
        if device.type == "cpu":
            self.xn = np.ascontiguousarray(x)
        else:  # uint16 has few CUDA kernels: hold int32 on the device
            self.x = torch.from_numpy(x.astype(np.int32)).to(device)
        self.scale = torch.from_numpy(self._scale_np).to(device).view(1, -1, 1, 1)
        self.shift = torch.from_numpy(self._shift_np).to(device).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def concat(self, other: ChipBatches) -> ChipBatches:
        """These chips followed by `other`'s (same device and normalisation), held once more."""
        import torch

        out = object.__new__(ChipBatches)
        out.__dict__.update(self.__dict__)
        out.n = self.n + other.n
        out.y = torch.cat([self.y, other.y])
        if self.xn is not None and other.xn is not None:
            out.xn = np.concatenate([self.xn, other.xn])
        elif self.x is not None and other.x is not None:
            out.x = torch.cat([self.x, other.x])
        else:
            raise DataError("cannot concatenate chips held on different devices")
        return out

    def batch(
        self, idx: torch.Tensor, *, augment: bool = False, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if self.xn is not None:
            ids = idx.cpu().numpy()
            b = self.xn[ids]  # a copy: safe to augment in place
            if augment:
                flips = (torch.rand(len(ids), 3, generator=generator) < 0.5).numpy()
                _augment_uint16(b, flips)
            n, c, h, w = b.shape
            out = np.empty((n, h, w, c), dtype=np.float32)
            np.multiply(b.transpose(0, 2, 3, 1), self._scale_np, out=out)
            np.subtract(out, self._shift_np, out=out)
            xb = torch.from_numpy(out).permute(0, 3, 1, 2)  # NCHW view, channels_last memory
            if not self.channels_last:
                xb = xb.contiguous()
            return xb, self.y[idx]
        assert self.x is not None
        idx = idx.to(self.device)
        xb = self.x[idx].to(torch.float32).mul_(self.scale).sub_(self.shift)
        if augment:
            xb = augment_batch(xb, generator)
        return xb.contiguous(memory_format=self.memory_format), self.y[idx]


def _augment_uint16(b: np.ndarray, flips: np.ndarray) -> None:
    """In place: per chip, flip columns / flip rows / transpose where `flips[:, k]` is set."""
    s = flips[:, 0]
    b[s] = b[s][..., ::-1]
    s = flips[:, 1]
    b[s] = b[s][..., ::-1, :]
    s = flips[:, 2]
    b[s] = b[s].transpose(0, 1, 3, 2)


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each chip gets an independent random horizontal flip, vertical flip and transpose."""
    import torch

    flips = torch.rand(x.shape[0], 3, generator=generator) < 0.5
    flips = flips.to(x.device).view(-1, 3, 1, 1, 1)
    x = torch.where(flips[:, 0], x.flip(-1), x)
    x = torch.where(flips[:, 1], x.flip(-2), x)
    return torch.where(flips[:, 2], x.transpose(-1, -2), x)


# ------------------------------------------------------------------ the loop
@dataclass(frozen=True)
class EpochStats:
    """What one epoch reports to the callback (and MLflow logs with step=epoch)."""

    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float
    chips_per_s: float

    def metrics(self) -> dict[str, float]:
        return {
            "train_loss": self.train_loss,
            "train_accuracy": self.train_accuracy,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "lr": self.lr,
            "epoch_seconds": self.seconds,
            "train_chips_per_s": self.chips_per_s,
        }


EpochCallback = Callable[[EpochStats], None]


def _no_epoch_callback(stats: EpochStats) -> None:
    pass


@dataclass
class FitResult:
    model: nn.Module
    history: list[EpochStats]
    best_epoch: int
    stopped_early: bool
    train_seconds: float


def param_groups(model: nn.Module, lr: float) -> list[dict[str, Any]]:
    """The model's parameters grouped by learning rate: `lr` times the multiplier the model
    names for a parameter-name prefix (`model.lr_multipliers`), 1 for all others; the group at
    `lr` itself comes first (the one whose rate is logged)."""
    multipliers: dict[str, float] = getattr(model, "lr_multipliers", {})
    groups: dict[float, list[nn.Parameter]] = {1.0: []}
    for name, p in model.named_parameters():
        mult = next((m for prefix, m in multipliers.items() if name.startswith(prefix)), 1.0)
        groups.setdefault(mult, []).append(p)
    return [{"params": ps, "lr": lr * m} for m, ps in groups.items() if ps]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    import torch

    params = param_groups(model, config.lr)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: cosine to 0 over `epochs`, ÷10 every third of them, or constant."""
    import torch

    sched = torch.optim.lr_scheduler
    if config.lr_schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "step":
        return sched.StepLR(optimizer, step_size=max(1, config.epochs // 3), gamma=0.1)
    return sched.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _autocast(device: torch.device, enabled: bool) -> Any:
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def predict_logits(
    model: nn.Module, data: ChipBatches, *, amp: bool, batch_size: int = EVAL_BATCH_SIZE
) -> torch.Tensor:
    """Float32 logits for every chip of `data`, in order, without augmentation."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode(), _autocast(data.device, amp):
        for start in range(0, data.n, batch_size):
            idx = torch.arange(start, min(start + batch_size, data.n))
            xb, _ = data.batch(idx)
            out.append(model(xb).float())
    return torch.cat(out) if out else torch.empty(0, 0)


def _evaluate(model: nn.Module, data: ChipBatches, amp: bool) -> tuple[float, float]:
    import torch

    logits = predict_logits(model, data, amp=amp)
    loss = torch.nn.functional.cross_entropy(logits, data.y).item()
    acc = (logits.argmax(1) == data.y).float().mean().item()
    return float(loss), float(acc)


def fit(
    model: nn.Module,
    train_data: ChipBatches,
    val_data: ChipBatches,
    config: TrainConfig,
    *,
    on_epoch: EpochCallback = _no_epoch_callback,
    progress: Callable[[float, str], None] = no_progress,
) -> FitResult:
    """Train `model` in place: the epoch with the lowest validation loss wins.

    Without `config.refit` the model keeps that epoch's weights; with it (the default) the run
    is repeated from the same initial weights on train + validation chips for that many epochs.
    """
    import torch

    device = train_data.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed 64×64 shapes: let cuDNN pick its kernels
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    init_state = (
        {k: v.detach().clone() for k, v in model.state_dict().items()} if config.refit else None
    )
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config)
    gen = torch.Generator().manual_seed(config.seed)

    def train_epoch(data: ChipBatches, optimizer: torch.optim.Optimizer) -> tuple[float, float]:
        """One pass over `data` in random order: (mean training loss, training accuracy)."""
        model.train()
        perm = torch.randperm(data.n, generator=gen)
        sum_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        for b in range(math.ceil(data.n / config.batch_size)):
            idx = perm[b * config.batch_size : (b + 1) * config.batch_size]
            xb, yb = data.batch(idx, augment=config.augment, generator=gen)
            with _autocast(device, config.amp):
                logits = model(xb)
                loss = torch.nn.functional.cross_entropy(logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sum_loss += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return float(sum_loss.item()) / data.n, float(correct.item()) / data.n

    history: list[EpochStats] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    stopped_early = False
    t_fit = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        lr = float(optimizer.param_groups[0]["lr"])
        train_loss, train_acc = train_epoch(train_data, optimizer)
        scheduler.step()
        train_seconds = time.perf_counter() - t0
        val_loss, val_acc = _evaluate(model, val_data, config.amp)
        stats = EpochStats(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_acc,
            val_loss=val_loss,
            val_accuracy=val_acc,
            lr=lr,
            seconds=time.perf_counter() - t0,
            chips_per_s=train_data.n / train_seconds if train_seconds > 0 else 0.0,
        )
        history.append(stats)
        on_epoch(stats)
        progress(
            (90.0 if config.refit else 100.0) * epoch / config.epochs,
            f"epoch {epoch}/{config.epochs}: loss {stats.train_loss:.3f}, val acc {val_acc:.3f}",
        )
        logger.info(
            "epoch %d/%d train_loss=%.4f train_acc=%.4f val_loss=%.4f val_acc=%.4f (%.0f chips/s)",
            epoch, config.epochs, stats.train_loss, stats.train_accuracy, val_loss, val_acc,
            stats.chips_per_s,
        )  # fmt: skip
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif config.patience and epoch - best_epoch >= config.patience:
            stopped_early = True
            logger.info("early stop: no val-loss improvement for %d epochs", config.patience)
            break
    if init_state is not None and best_epoch > 0:
        # the same run (initial weights, optimizer, LR schedule) on train + validation chips,
        # stopped at the epoch the validation loss chose: no chips of the training data are lost
        logger.info("refit on train + validation chips for %d epochs", best_epoch)
        progress(90.0, f"refit on train + validation chips for {best_epoch} epochs")
        model.load_state_dict(init_state)
        optimizer = make_optimizer(model, config)
        scheduler = make_scheduler(optimizer, config)
        both = train_data.concat(val_data)
        for _ in range(best_epoch):
            train_epoch(both, optimizer)
            scheduler.step()
        best_state = None  # keep the refit weights
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(model, history, best_epoch, stopped_early, time.perf_counter() - t_fit)


# ------------------------------------------------------------------ the whole run
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


def _scaled_callback(callback: ProgressCallback, start: float, end: float) -> ProgressCallback:
    inner = scaled(callback, start, end)

    def report(percent: float, message: str) -> None:
        inner(percent, message)

    return report


def train(config: TrainConfig, progress: ProgressCallback = no_progress) -> TrainResult:
    """Validate, load the chips, train, evaluate, track in MLflow and write the output catalog.

    Every input is checked before training starts; a failure after the MLflow run started ends
    that run as FAILED, and the output folder is only created (atomically) on success.
    """
    import torch

    from app_package.training import mlm, tracking
    from app_package.data.dataset import load_labelled_chips
    from app_package.model.networks import build_model, resolve_device, save_local
    from app_package.training.metrics import classification_report
    from app_package.util.outputs import atomic_dir

    config = validate_config(config)
    bands = config.resolved_bands()
    if config.output.exists() and not (config.output.is_dir() and not any(config.output.iterdir())):
        raise InputError(
            f"output folder {config.output} already exists: choose a new path or remove it"
        )
    device = resolve_device(config.device)
    tracker = tracking.Tracker(config.tracking_uri, config.experiment)  # raises if unreachable
    progress(0.0, f"loading chips from {config.stac}")
    chips = load_labelled_chips(
        config.stac,
        bands=bands,
        samples_per_class=config.samples_per_class,
        seed=config.seed,
        progress=_scaled_callback(progress, 0.0, 10.0),
    )
    check_classes(chips.counts(), chips.source)
    splits = split_data(chips.y, config)
    spec = ModelSpec.for_bands(config.arch, bands)
    torch.manual_seed(config.seed)
    model = build_model(spec)
    data = {
        name: ChipBatches(
            chips.x[idx], chips.y[idx], spec, device, channels_last=config.channels_last
        )
        for name, idx in (("train", splits.train), ("val", splits.val), ("test", splits.test))
    }
    split_counts = {k: int(v.n) for k, v in data.items()}
    with tracker.start_run() as run:
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
            digest=chips.digest(),
            counts=chips.counts(),
            split_counts=split_counts,
            bands=bands,
        )
        result = fit(
            model,
            data["train"],
            data["val"],
            config,
            on_epoch=run.log_epoch,
            progress=scaled(progress, 10.0, 85.0),
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
        progress(90.0, f"logging and registering the model as {config.model_name}")
        example = chips.x[splits.test[:2]]
        registered = run.log_model(cpu_model, spec, example, config.model_name)
        progress(95.0, "writing the output catalog")
        with atomic_dir(config.output) as tmp:
            item_id = mlm.item_id(config.model_name, registered.version)
            item_dir = tmp / item_id
            save_local(cpu_model, spec, item_dir)
            (item_dir / mlm.METRICS_FILE).write_text(json.dumps(report, indent=2))
            (item_dir / mlm.CONFUSION_PNG).write_bytes(
                tracking.confusion_matrix_png(report["confusion_matrix"], spec.classes)
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
                    accelerator=device.type,
                    framework_version=torch.__version__.split("+")[0],
                    run_id=run.run_id,
                    run_url=run.run_url,
                    model_uri=registered.model_uri,
                    training_source=config.stac,
                    batch_size=config.batch_size,
                ),
            )
        is_champion = run.promote_if_better(registered, float(report["accuracy"]))
        run.set_tag("output_catalog", str(config.output / "catalog.json"))
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
