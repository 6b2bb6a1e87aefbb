"""The portable form of a model: the network exported to ONNX, and run with ONNX Runtime (CPU).

The ONNX graph takes what the PyTorch network takes, float32 chips `[N, bands, H, W]` already
standardised with the spec's mean and standard deviation (`networks.normalise`), and returns the
logits `[N, classes]`; the batch axis is dynamic. Bands, their order, normalisation and classes
stay in the spec (`model.json`, the MLM item), as for the PyTorch weights.

`python -m app_package.model.onnx MODEL_FOLDER` exports `model.onnx` beside the `model.pt` and
`model.json` of a model saved before training exported it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app_package.errors import ModelError
from app_package.model.spec import ONNX_FILE, SPEC_FILE, WEIGHTS_FILE, ModelSpec

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

logger = logging.getLogger(__name__)

ONNX_OPSET = 20  # the torch.onnx (dynamo) exporter's default for torch 2.9-2.14
ONNX_INPUT = "chips"
ONNX_OUTPUT = "logits"
ONNX_MEDIA_TYPE = "application/octet-stream; application=onnx"
ONNX_ARTIFACT_TYPE = "onnx"


def export_onnx(model: nn.Module, spec: ModelSpec, path: Path) -> Path:
    """Export `model` (any batch size) to `path` as one self-contained ONNX file; returns it.

    The network is exported from a float32 CPU copy in eval mode, so the file holds fp32 weights
    whatever device and autocast training used.
    """
    import copy

    import torch

    net = copy.deepcopy(model).to("cpu", torch.float32).eval()
    example = torch.zeros((2, len(spec.bands), spec.chip_size, spec.chip_size))
    batch = torch.export.Dim("batch", min=1)
    # the exporter logs, at WARNING, every torchvision operator it cannot register (not installed)
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with torch.inference_mode(False), torch.no_grad():
            program = torch.onnx.export(
                net,
                (example,),
                dynamo=True,
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                dynamic_shapes=({0: batch},),
                opset_version=ONNX_OPSET,
                external_data=False,
                verbose=False,
            )
    except Exception as e:
        raise ModelError(f"cannot export the {spec.arch} network to ONNX: {e}") from e
    finally:
        quiet.setLevel(level)
    if program is None:  # pragma: no cover - dynamo=True always returns the program
        raise ModelError(f"torch.onnx.export returned no program for the {spec.arch} network")
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=False)
    return path


def verify_onnx(
    path: Path, model: nn.Module, spec: ModelSpec, chips: np.ndarray, atol: float = 1e-2
) -> float:
    """Check the ONNX file against the PyTorch network (fp32, CPU) on uint16 `chips`: logits
    within `atol` × max(1, largest |logit|) (hence the same classes, but for near ties);
    returns the largest logit difference.

    Why 1 %: the chip-statistics term's 2×2 texture is a square root of a difference of nearly
    equal variances for smooth bands, and its head weighs it heavily, so fp32 rounding in
    another operation order moved logits by more than 0.1 % (27,000 EuroSAT-size chips after
    one epoch: 0.035 on the largest logits, no class changed); a broken export is off by far
    more."""
    import copy

    import numpy as np
    import torch

    from app_package.model.networks import normalise

    net = copy.deepcopy(model).to("cpu", torch.float32).eval()
    x = normalise(chips, spec)
    with torch.inference_mode():
        want = net(x).float().numpy()
    got = OnnxNetwork(path).run(np.ascontiguousarray(x.numpy()))
    diff = float(np.abs(got - want).max()) if len(want) else 0.0
    scale = max(1.0, float(np.abs(want).max())) if len(want) else 1.0
    if diff > atol * scale:  # (classes can then differ only where two logits nearly tie)
        raise ModelError(
            f"the ONNX export {path} does not reproduce the {spec.arch} network: largest logit "
            f"difference {diff:.3g}, {int((got.argmax(1) != want.argmax(1)).sum())} of "
            f"{len(want)} chips classified differently"
        )
    return diff


class OnnxNetwork:
    """An ONNX model file and, once `session` is asked for, its ONNX Runtime CPU session."""

    def __init__(self, path: Path, uri: str = "") -> None:
        if not Path(path).is_file():
            raise ModelError(f"ONNX model {path} not found")
        self.path = Path(path)
        self.uri = uri or str(path)
        self._session: Any = None

    def session(self, threads: int | None = None) -> Any:
        """The `onnxruntime.InferenceSession` (CPU), created on first use with `threads` intra-op
        threads (default: ONNX Runtime's, one per core)."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.inter_op_num_threads = 1
            if threads:
                options.intra_op_num_threads = int(threads)
            try:
                self._session = ort.InferenceSession(
                    str(self.path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as e:  # onnxruntime raises its own types for corrupt files
                raise ModelError(f"cannot load ONNX model {self.uri}: {e}") from e
        return self._session

    def run(self, chips: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Standardised float32 chips [N, C, H, W] (C-contiguous) -> logits [N, K] float32."""
        import numpy as np

        (logits,) = self.session(threads).run([ONNX_OUTPUT], {ONNX_INPUT: chips})
        return np.asarray(logits, dtype=np.float32)


def missing_onnx(model: str, where: str) -> ModelError:
    """The error for a model without its ONNX artifact (models trained before it was written)."""
    return ModelError(
        f"model {model} has no ONNX artifact ({where}): it was saved before training exported "
        f"{ONNX_FILE}. Use runtime 'torch', retrain the model, or export it from a model folder "
        f"with `python -m app_package.model.onnx FOLDER` ({WEIGHTS_FILE} + {SPEC_FILE})"
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m app_package.model.onnx FOLDER`: write FOLDER/model.onnx from model.pt."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m app_package.model.onnx MODEL_FOLDER", file=sys.stderr)
        return 2
    from app_package.model.source import resolve_model

    folder = Path(args[0])
    ref = resolve_model(str(folder))
    out = export_onnx(ref.load().module, ref.spec, folder / ONNX_FILE)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
