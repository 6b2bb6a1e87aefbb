"""The chip classifier: uint16 chips → normalisation → network → class and confidence, in
batches. Two runtimes: "torch" (the PyTorch module, bf16 where the hardware has it, same classes
as fp32) and "onnx" (the model's ONNX file through ONNX Runtime on the CPU, float32)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from app_package.errors import InputError, ModelError
from app_package.model.onnx import OnnxNetwork

if TYPE_CHECKING:
    import torch

    from app_package.inference.tiling import ChipGrid
    from app_package.model.spec import ModelSpec

# window features (`ChipClassifier.window_probabilities`) run over column chunks of about this
# many pixels, each with a halo of at least WINDOW_HALO_PX on both sides so that a chunk's
# windows see what they would see in the whole strip (SmallCNN's last features reach 19 px
# out). Measured on 1 thread, bf16, 1024 rows: the network's features at 29 Mpx/s for 576 px
# wide chunks, 16 Mpx/s for 2112 px (the activations leave the caches), 25 Mpx/s per chip
WINDOW_CHUNK_PX = 512
WINDOW_HALO_PX = 32

logger = logging.getLogger(__name__)

# what a classifier runs: a PyTorch module (runtime "torch") or an ONNX file (runtime "onnx")
type Network = torch.nn.Module | OnnxNetwork


def eval_mode(module: torch.nn.Module) -> torch.nn.Module:
    """`module.eval()`; torch.export programs (MLflow's pt2 format) were exported in eval mode."""
    import torch

    if isinstance(module, torch.fx.GraphModule):
        return module
    return module.eval()


def use_bf16(device: torch.device, precision: str = "auto") -> bool:
    """bf16 autocast: "auto" uses it where the hardware computes bf16 natively (CUDA; CPUs with
    AVX512-BF16/AMX), where it is ~1.7× faster than fp32 on 2 cores; "fp32" never; "bf16" always.
    tests/inference/test_classify.py checks that it gives the classes of fp32."""
    import torch

    if precision not in ("auto", "fp32", "bf16"):
        raise InputError(f"unknown precision {precision!r}: use auto, fp32 or bf16")
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class ChipClassifier:
    """Batched inference: uint16 chips -> class probabilities, bands/normalisation from the spec.

    The runtime follows the network: a `torch.nn.Module` runs in PyTorch on `device` (bf16
    autocast per `precision`); an `OnnxNetwork` runs in ONNX Runtime on the CPU in float32 with
    as many threads as torch has (`torch.get_num_threads()`, which `classify_product` sets).
    """

    def __init__(
        self,
        module: Network,
        spec: ModelSpec,
        device: torch.device,
        batch_size: int,
        precision: str = "auto",
    ) -> None:
        import torch

        self.spec = spec
        self.device = device
        self.batch_size = max(1, batch_size)
        self.onnx: OnnxNetwork | None = None
        if isinstance(module, OnnxNetwork):
            if precision not in ("auto", "fp32"):
                raise InputError(
                    f"precision {precision!r} needs runtime torch: the onnx runtime computes "
                    "in float32 (use precision auto or fp32)",
                    field="precision",
                )
            if device.type != "cpu":
                logger.warning("runtime onnx runs on the CPU: device %s is not used", device)
            self.onnx = module
            self.onnx.session(torch.get_num_threads())  # load now: errors before any chip
            self.device = torch.device("cpu")
            self.autocast = False
        else:
            from app_package.model.networks import SmallCNN

            if isinstance(module, SmallCNN):  # BatchNorm folded into the convolutions
                module = module.fused()
            self.module = eval_mode(module).to(device)
            if not isinstance(self.module, torch.fx.GraphModule):  # exported graphs: as they are
                self.module = self.module.to(memory_format=torch.channels_last)
            self.autocast = use_bf16(device, precision)
        self._local = threading.local()  # the CPU path's reused input buffer, one per thread
        self.cpu_s = 0.0  # CPU seconds of the threads that ran `in_threads`/`window_probabilities`
        self._cpu_lock = threading.Lock()
        mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._inv_std = 1.0 / torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
        self._shift = -mean * self._inv_std

    @property
    def runtime(self) -> str:
        return "torch" if self.onnx is None else "onnx"

    def _normalised_on_cpu(self, batch: np.ndarray) -> torch.Tensor:
        """(x - mean) / std into one reused float32 buffer, channels_last for PyTorch (contiguous
        NCHW for ONNX Runtime): torch converts uint16 and changes layout in one pass and the
        arithmetic runs in place, in one more pass (addcmul, not a subtract and a multiply).
        Fresh 50 MB arrays per batch cost page faults, hence the reused buffer rather than
        numpy's float copy plus a channels_last copy."""
        import torch

        n, c, h, w = batch.shape
        if c != len(self.spec.bands):
            raise ModelError(
                f"chips have {c} bands, the model expects {len(self.spec.bands)}: "
                + ", ".join(self.spec.bands)
            )
        buf: torch.Tensor | None = getattr(self._local, "buf", None)
        if buf is None or buf.shape[0] < n or buf.shape[1:] != (c, h, w):
            buf = torch.empty((max(n, self.batch_size), c, h, w), dtype=torch.float32)
            if self.onnx is None:
                buf = buf.contiguous(memory_format=torch.channels_last)
            self._local.buf = buf
        x = buf[:n]
        x.copy_(torch.from_numpy(batch))
        return torch.addcmul(self._shift, x, self._inv_std, out=x)  # x / std - mean / std: one pass

    def in_threads(self, chips: np.ndarray, pool: ThreadPoolExecutor | None) -> np.ndarray:
        """`self(chips)`, the chips shared out in whole batches over the pool's threads (each
        with its own input buffer; torch releases the GIL while it computes). With one torch
        thread each this uses several cores without OpenMP's spinning barriers, which steal
        the cores from a reader decoding beside it."""
        if pool is None or len(chips) <= self.batch_size:
            return self._counted(self, chips)
        # batches dealt out in turn: every thread busy to the end, whatever the thread count
        starts = range(0, len(chips), self.batch_size)
        parts = [pool.submit(self._counted, self, chips[i : i + self.batch_size]) for i in starts]
        return np.concatenate([f.result() for f in parts])

    def _counted[T, A](self, work: Callable[[A], T], arg: A) -> T:
        """work(arg), its thread's CPU seconds added to `cpu_s`."""
        c0 = time.thread_time()
        try:
            return work(arg)
        finally:
            with self._cpu_lock:
                self.cpu_s += time.thread_time() - c0

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        """[N, C, H, W] uint16 -> [N, K] float32 probabilities."""
        import torch

        from app_package.model.networks import normalise

        out = np.empty((len(chips), len(self.spec.classes)), dtype=np.float32)
        if self.onnx is not None:
            return self._run_onnx(chips, self.onnx, out)
        with torch.inference_mode():
            for i in range(0, len(chips), self.batch_size):
                batch = chips[i : i + self.batch_size]
                if self.device.type == "cpu":
                    x = self._normalised_on_cpu(np.ascontiguousarray(batch))
                else:  # upload the compact uint16 chips, normalise on the device
                    x = normalise(torch.from_numpy(batch).to(self.device), self.spec)
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
                    logits = self.module(x)
                out[i : i + len(x)] = torch.softmax(logits.float(), 1).cpu().numpy()
        return out

    def windows_supported(self) -> bool:
        """Whether the network computes window features (`window_probabilities`): a SmallCNN
        in PyTorch."""
        from app_package.model.networks import SmallCNN

        return self.onnx is None and isinstance(self.module, SmallCNN)

    def window_probabilities(
        self,
        block: np.ndarray,
        grid: ChipGrid,
        valid: np.ndarray,
        pool: ThreadPoolExecutor | None = None,
    ) -> np.ndarray:
        """[nr, nc, K] probabilities of the chips of a strip's pixel block [C, H, W] (H, W as
        `reader.read_strips` makes them), from convolutional features computed once per column
        chunk and pooled per chip window (`SmallCNN.window_logits`): at stride s a pixel's
        features are computed once instead of (chip / s)² times. Windows with no valid chip in
        their chunk are not computed (their rows of the result are zero). The chunks are
        shared out over `pool`'s threads (see `in_threads`)."""
        import torch

        if not self.windows_supported():
            raise ModelError("window features need a SmallCNN run in PyTorch")
        nr, nc = valid.shape
        s, chip = grid.stride, grid.chip
        out = np.zeros((nr, nc, len(self.spec.classes)), dtype=np.float32)
        halo = -(-WINDOW_HALO_PX // s)  # in windows
        per_chunk = max(1, WINDOW_CHUNK_PX // s)
        from app_package.model.networks import SmallCNN

        module = self.module
        assert isinstance(module, SmallCNN)  # windows_supported

        def chunk(c0: int) -> None:
            c1 = min(nc, c0 + per_chunk)
            h0, h1 = max(0, c0 - halo), min(nc, c1 + halo)
            part = block[:, : (nr - 1) * s + chip, h0 * s : (h1 - 1) * s + chip]
            with torch.inference_mode():
                x = self._normalised_strip(part)
                with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
                    logits = module.window_logits(x, chip, s)
                probs = torch.softmax(logits.float(), -1)[:, c0 - h0 : c1 - h0]
                out[:, c0:c1] = probs.cpu().numpy()

        starts = [c0 for c0 in range(0, nc, per_chunk) if valid[:, c0 : c0 + per_chunk].any()]
        if pool is None:
            for c0 in starts:
                self._counted(chunk, c0)
        else:
            for done in [pool.submit(self._counted, chunk, c0) for c0 in starts]:
                done.result()
        return out

    def _normalised_strip(self, part: np.ndarray) -> torch.Tensor:
        """[C, H, W] uint16 -> normalised [1, C, H, W] float32 on the device, channels_last."""
        import torch

        if part.shape[0] != len(self.spec.bands):
            raise ModelError(
                f"the strip has {part.shape[0]} bands, the model expects "
                f"{len(self.spec.bands)}: " + ", ".join(self.spec.bands)
            )
        src = torch.from_numpy(part)[None].to(self.device)  # strided: one pass, no copy
        x = torch.empty(src.shape, dtype=torch.float32, device=self.device)
        x = x.contiguous(memory_format=torch.channels_last)
        x.copy_(src)
        shift, inv_std = self._shift.to(self.device), self._inv_std.to(self.device)
        return torch.addcmul(shift, x, inv_std, out=x)

    def _run_onnx(self, chips: np.ndarray, net: OnnxNetwork, out: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            for i in range(0, len(chips), self.batch_size):
                x = self._normalised_on_cpu(np.ascontiguousarray(chips[i : i + self.batch_size]))
                logits = torch.from_numpy(net.run(x.numpy()))
                out[i : i + len(x)] = torch.softmax(logits, 1).numpy()
        return out
