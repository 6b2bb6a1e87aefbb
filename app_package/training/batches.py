"""The in-memory data path of training: uint16 chips, normalised and augmented per batch on the
training device.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from app_package.errors import DataError
from app_package.model.spec import ModelSpec
from app_package.training.radiometry import radiometric_jitter

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


class ChipBatches:
    """Chips held once in memory as uint16 (on the training device), served as normalised batches.

    Normalisation uses the spec's per-band statistics (looked up by band name); augmentation
    (random flips and transposes = the 8 rotations/reflections) is applied on whole batches.
    On the CPU the batch is gathered, augmented (still uint16) and normalised straight into a
    channels_last float32 buffer with numpy, several times faster than torch's uint16 kernels.

    The splits of one data set share its chips: `subset` and `concat` make sets that pick rows
    of the same array by index (`index`), so train, validation, test and the refit's
    train + validation together hold the chips once.
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
        if x.ndim != 4 or x.shape[1] != len(spec.bands):
            raise DataError(
                f"chips of shape {x.shape} do not match the model's {len(spec.bands)} bands "
                f"({', '.join(spec.bands)}): expected [N, {len(spec.bands)}, H, W]"
            )
        if len(y) != len(x):
            raise DataError(f"{len(x)} chips but {len(y)} labels: give one label per chip")
        self.device = device
        self.n = int(x.shape[0])
        self.channels_last = channels_last
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
        std = np.asarray(spec.std, dtype=np.float32)
        mean = np.asarray(spec.mean, dtype=np.float32)
        self._scale_np = 1.0 / std
        self._shift_np = mean / std
        # the rows of the stored chips this set serves, in order; None: all of them
        self.index: np.ndarray | None = None
        self._index_t: torch.Tensor | None = None  # `index` on the device (CUDA)
        self.xn: np.ndarray | None = None
        self.x: torch.Tensor | None = None
        if device.type == "cpu":
            self.xn = np.ascontiguousarray(x)
        else:  # uint16 has few CUDA kernels: hold int32 on the device, converted piece by piece
            self.x = torch.empty(x.shape, dtype=torch.int32, device=device)
            step = max(1, (64 << 20) // max(1, x[:1].nbytes))  # ~64 MB of uint16 at a time
            for start in range(0, self.n, step):
                piece = x[start : start + step].astype(np.int32)
                self.x[start : start + step] = torch.from_numpy(piece).to(device)
        self.scale = torch.from_numpy(self._scale_np).to(device).view(1, -1, 1, 1)
        self.shift = torch.from_numpy(self._shift_np).to(device).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.bands = spec.bands

    def _rows(self) -> np.ndarray:
        """The stored rows this set serves, as an index array."""
        return np.arange(self.n) if self.index is None else self.index

    def _with_rows(self, rows: np.ndarray, y: torch.Tensor) -> ChipBatches:
        """A set serving `rows` of the same stored chips, labelled `y`: nothing is copied."""
        import torch

        out = object.__new__(ChipBatches)
        out.__dict__.update(self.__dict__)
        out.index = np.asarray(rows, dtype=np.int64)
        out.n = len(out.index)
        out.y = y
        out._index_t = torch.from_numpy(out.index).to(self.device) if self.x is not None else None
        return out

    def subset(self, positions: np.ndarray) -> ChipBatches:
        """The chips at `positions` of this set (e.g. a split's indices), sharing its storage."""
        import torch

        positions = np.asarray(positions, dtype=np.int64)
        return self._with_rows(self._rows()[positions], self.y[torch.from_numpy(positions)])

    def concat(self, other: ChipBatches) -> ChipBatches:
        """These chips followed by `other`'s (same device and normalisation). Sets cut from the
        same stored chips (`subset`) share them; others are copied into one new array."""
        import torch

        y = torch.cat([self.y, other.y])
        if self._storage() is other._storage():
            return self._with_rows(np.concatenate([self._rows(), other._rows()]), y)
        out = object.__new__(ChipBatches)
        out.__dict__.update(self.__dict__)
        out.n = self.n + other.n
        out.y = y
        out.index = out._index_t = None
        if self.xn is not None and other.xn is not None:
            out.xn = np.concatenate([self._served_np(), other._served_np()])
        elif self.x is not None and other.x is not None:
            out.x = torch.cat([self._gather_t(torch.arange(n)) for n in (self.n, other.n)])
        else:
            raise DataError("cannot concatenate chips held on different devices")
        return out

    def _storage(self) -> np.ndarray | torch.Tensor:
        """The stored chips this set picks its rows from."""
        storage = self.xn if self.xn is not None else self.x
        assert storage is not None
        return storage

    def _served_np(self) -> np.ndarray:
        """The chips of this set in order (CPU): the stored array itself when it serves all."""
        assert self.xn is not None
        return self.xn if self.index is None else self.xn[self.index]

    def _gather_t(self, idx: torch.Tensor) -> torch.Tensor:
        """The stored (int32, on the device) chips at positions `idx` of this set."""
        assert self.x is not None
        idx = idx.to(self.device)
        return self.x[idx if self._index_t is None else self._index_t[idx]]

    def batch(
        self,
        idx: torch.Tensor,
        *,
        augment: bool = False,
        generator: torch.Generator | None = None,
        radiometric: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised chips `idx` and their labels. `augment`: random flips/transposes;
        `radiometric`: the strength of random radiometric shifts (`training.radiometry`), 0 off."""
        import torch

        jitter = None
        if radiometric > 0:  # drawn from the training generator: reproducible per seed
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
            jitter = radiometric_jitter(
                len(idx), self.bands, radiometric, np.random.default_rng(seed)
            )
        if self.xn is not None:
            ids = idx.cpu().numpy()
            b = self.xn[
                ids if self.index is None else self.index[ids]
            ]  # a copy: augmented in place
            if augment:
                flips = (torch.rand(len(ids), 3, generator=generator) < 0.5).numpy()
                _augment_uint16(b, flips)
            n, c, h, w = b.shape
            out = np.empty((n, h, w, c), dtype=np.float32)
            if jitter is None:
                np.multiply(b.transpose(0, 2, 3, 1), self._scale_np, out=out)
                np.subtract(out, self._shift_np, out=out)
            else:  # (gain·DN + offset − mean) / std, folded into one multiply-add per chip and band
                gain, offset = jitter
                mul = (gain * self._scale_np)[:, None, None, :]
                add = (offset * self._scale_np - self._shift_np)[:, None, None, :]
                np.multiply(b.transpose(0, 2, 3, 1), mul, out=out)
                np.add(out, add, out=out)
            xb = torch.from_numpy(out).permute(0, 3, 1, 2)  # NCHW view, channels_last memory
            if not self.channels_last:
                xb = xb.contiguous()
            return xb, self.y[idx]
        idx = idx.to(self.device)
        xb = self._gather_t(idx).to(torch.float32)
        if jitter is not None:
            g, o = (torch.from_numpy(a).to(self.device)[:, :, None, None] for a in jitter)
            xb = xb.mul_(g).add_(o)
        xb = xb.mul_(self.scale).sub_(self.shift)
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
