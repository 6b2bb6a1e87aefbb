"""Model architectures, built from the metadata every saved model carries (`ModelSpec`,
in `app_package.model.spec`).

Inference takes bands, their order, normalisation and classes from the spec, never from constants.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from app_package.errors import InputError, ModelError
from app_package.model.spec import (
    ARCHITECTURES,
    CHIP_STATS_LR_MULT,
    SMALLCNN_FEATURE_STRIDE,
    SMALLCNN_POOLINGS,
    SPEC_FILE,
    WEIGHTS_FILE,
    ModelSpec,
)


def normalise(chips: np.ndarray | torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """uint16 DN chips [N, C, H, W] in `spec.bands` order -> float32 standardised tensor.

    A numpy array is normalised with numpy (on the CPU about 3× faster than torch's uint16
    conversion); a tensor stays on its device. Both compute (x - mean) / std in float32.
    """
    if chips.ndim != 4 or chips.shape[1] != len(spec.bands):
        raise ModelError(
            f"chips have shape {tuple(chips.shape)}, model expects [N, {len(spec.bands)}, H, W] "
            f"with bands {', '.join(spec.bands)}"
        )
    if isinstance(chips, np.ndarray):
        buf = chips.astype(np.float32)  # a contiguous copy
        buf -= np.asarray(spec.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        buf /= np.asarray(spec.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return torch.from_numpy(buf)
    x = chips
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x.to(torch.float32) - mean) / std


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _mean_square(f: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] float32 -> [N, C]: each channel's mean of squares. Without gradients
    (inference) from `vector_norm`, which reads the tensor once without materialising its
    square (a 50 MB temporary for a batch of 256 chips)."""
    if f.requires_grad:
        return (f * f).mean((2, 3))
    return torch.linalg.vector_norm(f, dim=(2, 3)).square() / (f.shape[2] * f.shape[3])


def _mean_std(f: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, 2C] float32: each channel's mean, then its standard deviation.

    Two plain reductions (mean and mean square) rather than `torch.std_mean`, which is several
    times slower on the CPU.
    """
    f = f.float()
    mean = f.mean((2, 3))
    std = (_mean_square(f) - mean * mean).clamp_min(0).add(1e-5).sqrt()
    return torch.cat([mean, std], 1)


def _window_mean_var(
    f: torch.Tensor, size: int, step: int, margin: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """[1, C, H, W] -> (mean, variance) [1, C, nr, nc] of every `size`² window every `step`
    cells of f without its outer `margin` cells, by box filters instead of one reduction per
    window. The windows are made of blocks of gcd(size, step, margin)² cells,
    averaged first over the whole of f: each cell is read once, and no slice of f is copied."""
    f = f.float()  # channels_last stays so: pooling it is ~3 x faster than NCHW on the CPU
    square = f.square()
    g = math.gcd(size, step, margin)
    if g > 1:
        f, square = nn.functional.avg_pool2d(f, g), nn.functional.avg_pool2d(square, g)
    m = margin // g
    if m:
        f, square = f[:, :, m:-m, m:-m], square[:, :, m:-m, m:-m]
    mean = nn.functional.avg_pool2d(f, size // g, step // g)
    square = nn.functional.avg_pool2d(square, size // g, step // g)
    return mean, (square - mean * mean).clamp_min(0)


def window_chip_stats(x: torch.Tensor, chip: int, stride: int) -> torch.Tensor:
    """`chip_stats` of every `chip`² window of a [1, C, H, W] strip every `stride` pixels, as
    [1, 3C, nr, nc]: the same statistics of each window's central half, by box filters over the
    strip (`stride` and `chip` / 4 even, so each window's 2×2 blocks lie on the strip's 2×2
    grid)."""
    x = x.float()
    q, half = chip // 4, chip - 2 * (chip // 4)  # the central half: [q, q + half)
    mean, var = _window_mean_var(x, half, stride, q)
    blocks = nn.functional.avg_pool2d(x, 2)
    _, block_var = _window_mean_var(blocks, half // 2, stride // 2, q // 2)
    return _stat_terms(mean, var, block_var.add(1e-5).sqrt())


def _stat_terms(mean: torch.Tensor, var: torch.Tensor, block_std: torch.Tensor) -> torch.Tensor:
    """The statistics term's inputs from a region's per-band mean, variance and standard
    deviation of its 2×2 block means: [mean, std, texture] along dimension 1, the texture
    sqrt(var - block variance) (the law of total variance; see `chip_stats`)."""
    within = (var - block_std.square()).clamp_min(0).add(1e-5).sqrt()
    return torch.cat([mean, var.add(1e-5).sqrt(), within], 1)


def chip_stats(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, 3C] float32, over the chip's central half (H/2 × W/2 pixels): each
    band's mean, its standard deviation, and its pixel-scale texture, the standard deviation
    within 2×2 pixel blocks.

    By the law of total variance the variance is the mean within-block variance plus the
    variance of the block means, so the texture is sqrt(var(x) - var(avgpool2(x))): one pooling
    pass and one read instead of neighbour differences (several times slower on the CPU); the
    block means also give the mean. The central half keeps the cost a small share of SmallCNN's
    inference (what it costs and scores: the README's benchmarks and `model.spec.SMALLCNN_HEAD`).
    """
    x = x.float()
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    x = x[:, :, h // 4 : h - h // 4, w // 4 : w - w // 4]
    blocks = _mean_std(nn.functional.avg_pool2d(x, 2))
    mean, block_std = blocks[:, :c], blocks[:, c:]
    var = (_mean_square(x) - mean * mean).clamp_min(0)
    return _stat_terms(mean, var, block_std)


class SmallCNN(nn.Module):
    """A small, fast CNN: a stride-2 stem, since full-resolution convolutions dominate cost.

    `pool` and `stats` choose the head (see `SMALLCNN_HEAD`); the defaults are the original
    average-pooled head without the chip-statistics term, which models saved without those keys
    in their spec were trained with.
    """

    lr_multipliers: dict[str, float]  # parameter-name prefix -> learning-rate multiplier

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int = 32,
        *,
        pool: str = "avg",
        stats: bool = False,
    ) -> None:
        super().__init__()
        if pool not in SMALLCNN_POOLINGS:
            raise ModelError(
                f"unknown SmallCNN pooling {pool!r}: choose one of {', '.join(SMALLCNN_POOLINGS)}"
            )
        if stats and pool != "meanstd":
            raise ModelError("the chip-statistics term needs the meanstd pooling")
        w = width
        self.features = nn.Sequential(
            _conv_bn(in_channels, w, 2),  # 64 -> 32
            _conv_bn(w, 2 * w, 2),  # 32 -> 16
            _conv_bn(2 * w, 2 * w, 1),
            _conv_bn(2 * w, 4 * w, 2),  # 16 -> 8
            _conv_bn(4 * w, 4 * w, 1),
        )
        self.pool_mode = pool
        self.pool = nn.AdaptiveAvgPool2d(1)
        feat = 8 * w if pool == "meanstd" else 4 * w
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(feat, num_classes))
        self.stats = stats
        self.lr_multipliers = {}
        if stats:
            # standardised by the training chips' statistics (BatchNorm's running estimates)
            self.stats_norm = nn.BatchNorm1d(3 * in_channels, affine=False)
            self.stats_head = nn.Linear(3 * in_channels, num_classes)
            self.lr_multipliers = {"stats_head.": CHIP_STATS_LR_MULT}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if self.pool_mode == "avg":
            return self.head(self.pool(f))  # the original head, unchanged
        # the statistics and the (tiny) linear layers in float32 even under bf16 autocast:
        # differences of squares and small logit margins are where bf16 would flip classes
        with torch.autocast(x.device.type, enabled=False):
            logits = self.head(_mean_std(f))
            if self.stats:
                logits = logits + self.stats_head(self._standardise(chip_stats(x)))
            return logits

    def fused(self) -> SmallCNN:
        """A copy for inference (eval mode) with each convolution's BatchNorm folded into its
        weights: ~10 % faster on the CPU; probabilities within 1e-8 (fp32) / 4e-6 (bf16) of
        the unfused network's on the shipped model."""
        import copy

        from torch.nn.utils.fusion import fuse_conv_bn_eval

        out = copy.deepcopy(self).eval()
        for layer in out.features:
            assert isinstance(layer, nn.Sequential)
            conv, bn = layer[0], layer[1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                layer[0], layer[1] = fuse_conv_bn_eval(conv, bn), nn.Identity()
        return out

    def window_logits(self, x: torch.Tensor, chip: int, stride: int) -> torch.Tensor:
        """Logits [nr, nc, K] of every `chip`² window every `stride` pixels of a normalised
        [1, C, H, W] strip, H = (nr - 1)·stride + chip and W likewise, from the convolutional
        features computed once over the strip and pooled per window (what `forward` computes
        per chip, except that a window's border features see its neighbours' pixels where a
        chip on its own sees zero padding). `stride` and `chip` must be multiples of
        `SMALLCNN_FEATURE_STRIDE`."""
        step = SMALLCNN_FEATURE_STRIDE
        if stride % step or chip % step:
            raise ModelError(
                f"window features need a stride and chip size divisible by {step}: "
                f"got stride {stride}, chip {chip}"
            )
        f = self.features(x)
        with torch.autocast(x.device.type, enabled=False):
            mean, var = _window_mean_var(f, chip // step, stride // step)
            std = var.add(1e-5).sqrt()  # as `_mean_std`
            linear = self.head[-1]
            if self.pool_mode == "avg":
                logits = linear(mean[0].permute(1, 2, 0))
            else:
                logits = linear(torch.cat([mean, std], 1)[0].permute(1, 2, 0))
            if self.stats:
                stats = window_chip_stats(x, chip, stride)[0].permute(1, 2, 0)
                nr, nc, n = stats.shape
                flat = self._standardise(stats.reshape(nr * nc, n))
                logits = logits + self.stats_head(flat).reshape(nr, nc, -1)
            return logits

    def _standardise(self, s: torch.Tensor) -> torch.Tensor:
        norm = self.stats_norm
        if self.training and s.shape[0] > 1:
            return norm(s)  # batch statistics; updates the running estimates
        # inference, or a 1-chip training batch (no batch statistics): the running estimates
        assert norm.running_mean is not None and norm.running_var is not None
        return nn.functional.batch_norm(
            s, norm.running_mean, norm.running_var, training=False, eps=norm.eps
        )


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.down(x))


class ResNet18(nn.Module):
    """ResNet-18 with an N-band stem (3×3, stride 1, no max-pool: 64×64 chips are small)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def build_model(spec: ModelSpec) -> nn.Module:
    """An untrained network for `spec` (architecture, band count, class count)."""
    if spec.arch == "smallcnn":
        return SmallCNN(
            len(spec.bands),
            len(spec.classes),
            pool=str(spec.extra.get("pool", "avg")),
            stats=bool(spec.extra.get("chip_stats", False)),
        )
    if spec.arch == "resnet18":
        return ResNet18(len(spec.bands), len(spec.classes))
    raise InputError(
        f"unknown architecture {spec.arch!r}: choose one of {', '.join(ARCHITECTURES)}"
    )


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when present; `cpu`/`cuda` are taken as given (cuda must exist)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"unknown device {device!r}: use auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} requested but CUDA is not available: use device cpu or auto",
            field="device",
        )
    return torch.device(device)


# ---- portable local format: a folder with weights (state_dict) and spec JSON ----
def save_local(model: nn.Module, spec: ModelSpec, folder: Path) -> tuple[Path, Path]:
    """Write `model.pt` (a plain state_dict, loadable with weights_only=True) and `model.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    meta = folder / SPEC_FILE
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, weights)
    meta.write_text(json.dumps(spec.to_dict(), indent=2))
    return weights, meta


def load_local(weights: Path, spec: ModelSpec) -> nn.Module:
    """Rebuild the network for `spec` and load a state_dict saved by `save_local`."""
    if not weights.is_file():
        raise ModelError(f"model weights {weights} not found")
    model = build_model(spec)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # corrupt file or mismatched architecture
        raise ModelError(
            f"cannot load weights {weights} as {spec.arch} with {len(spec.bands)} bands: {e}"
        ) from e
    return model.eval()
