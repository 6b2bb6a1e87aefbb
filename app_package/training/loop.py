"""The training loop: optimiser, schedule, mixed precision, early stopping and the refit. It does
not know about MLflow: it reports each epoch through a callback. After every completed epoch it
hands its whole state (`LoopState`) to another callback, and it can start again from one: a run
interrupted between epochs resumes where it stopped (`training.checkpoint` keeps it on disk).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app_package.training.batches import ChipBatches
from app_package.training.config import TrainConfig
from app_package.util.progress import no_progress

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

EVAL_BATCH_SIZE = 512


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


@dataclass
class LoopState:
    """Everything the loop needs to go on after `epoch` completed epochs (0: none yet) as if it
    had never stopped: weights, optimiser, schedule, early stopping, random generators."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    best_loss: float
    best_epoch: int
    best_state: dict[str, torch.Tensor] | None  # weights of the best epoch (without refit)
    init_state: dict[str, torch.Tensor] | None  # initial weights (the refit starts from them)
    stopped_early: bool
    generator: torch.Tensor  # the training generator (order, augmentation)
    torch_rng: torch.Tensor  # torch's global CPU generator (dropout)
    cuda_rng: list[torch.Tensor] | None
    history: list[EpochStats]


StateCallback = Callable[[LoopState], None]


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
    on_state: StateCallback | None = None,
    resume: LoopState | None = None,
) -> FitResult:
    """Train `model` in place: the epoch with the lowest validation loss wins.

    Without `config.refit` the model keeps that epoch's weights; with it (the default) the run
    is repeated from the same initial weights on train + validation chips for that many epochs.
    `on_state` gets the loop's state before the first epoch and after each one, before
    `on_epoch` (its tensors are the live ones: save them during the call); `resume` starts
    from such a state instead of from the beginning, ending as the uninterrupted run would.
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
            xb, yb = data.batch(
                idx, augment=config.augment, generator=gen, radiometric=config.radiometric
            )
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
    best_loss, best_epoch = math.inf, 0
    best_state: dict[str, torch.Tensor] | None = None
    stopped_early = False
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict(resume.scheduler)
        gen.set_state(resume.generator)
        torch.set_rng_state(resume.torch_rng)
        if resume.cuda_rng is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(resume.cuda_rng)
        history = list(resume.history)
        best_loss, best_epoch, best_state = resume.best_loss, resume.best_epoch, resume.best_state
        init_state, stopped_early = resume.init_state, resume.stopped_early
        logger.info("resuming after epoch %d of %d", resume.epoch, config.epochs)

    def report_state(epoch: int) -> None:
        if on_state is None:
            return
        cuda = torch.cuda.is_available() and device.type == "cuda"
        on_state(
            LoopState(
                epoch=epoch,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                best_loss=best_loss,
                best_epoch=best_epoch,
                best_state=best_state,
                init_state=init_state,
                stopped_early=stopped_early,
                generator=gen.get_state(),
                torch_rng=torch.get_rng_state(),
                cuda_rng=torch.cuda.get_rng_state_all() if cuda else None,
                history=list(history),
            )
        )

    first = 1 if resume is None else resume.epoch + 1
    last = first - 1 if stopped_early else config.epochs  # stopped early: on to the refit
    if resume is None:
        report_state(0)
    t_fit = time.perf_counter()
    for epoch in range(first, last + 1):
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
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif config.patience and epoch - best_epoch >= config.patience:
            stopped_early = True
        report_state(epoch)
        on_epoch(stats)
        progress(
            (90.0 if config.refit else 100.0) * epoch / config.epochs,
            f"epoch {epoch}/{config.epochs}: loss {stats.train_loss:.3f}, val acc {val_acc:.3f}",
        )
        logger.info(
            "epoch %d/%d train_loss=%.4f train_acc=%.4f val_loss=%.4f val_acc=%.4f (%.0f chips/s)",
            epoch,
            config.epochs,
            stats.train_loss,
            stats.train_accuracy,
            val_loss,
            val_acc,
            stats.chips_per_s,
        )
        if stopped_early:
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
