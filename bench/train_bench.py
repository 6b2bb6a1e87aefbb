"""Training benchmark: throughput with the real data path, MLflow overhead, real-data accuracy.

    .venv/bin/python -m bench.train_bench --out bench/results/train.json          # CPU, 2 threads
    .venv/bin/python -m bench.train_bench --device cuda --arch resnet18 --quick --out gpu.json

1. Throughput: chips/s of `training.fit` (uint16 chips in memory → normalise → flips/rotations
   on whole batches → bf16 autocast, channels_last), training time only, median over epochs.
2. MLflow overhead: the same training with tracking off and on (a real sqlite store), in the same
   process; the share of wall time spent in MLflow calls.
3. Real data (CPU runs): 5-fold cross-validated accuracy of the default recipe on the 270 real
   EuroSAT-MS chips in ../shared/data/eurosat-ms-subset, side by side with a spectral baseline
   (logistic regression on per-band mean and std) on the same folds.
4. CUDA runs: the same real-data folds on the device, to check the CUDA path reaches the same
   accuracy (skipped when the data is absent).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = REPO.parent / "shared" / "data" / "eurosat-ms-subset"


def _synthetic(n: int, bands: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Learnable uint16 chips: a per-class spectral signature plus texture noise (no rasterio)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 10).astype(np.int64)
    signatures = rng.uniform(500, 3000, size=(10, bands))
    noise = rng.normal(1.0, 0.15, size=(n, bands, 64, 64)).astype(np.float32)
    x = np.clip(signatures[y][:, :, None, None] * noise, 1, 65535).astype(np.uint16)
    return x, y


def cuda_vs_cpu(cfg: Any, n: int, epochs: int) -> dict[str, Any]:
    """Same recipe, same seed, synthetic train/test split: accuracy on CPU and on the GPU."""
    import torch

    from app_package.model.networks import build_model
    from app_package.model.spec import ModelSpec
    from app_package.training.batches import ChipBatches
    from app_package.training.loop import fit, predict_logits

    bands = cfg.resolved_bands()
    x, y = _synthetic(n, len(bands), seed=1)
    # a harder task than `throughput`'s: noisier chips, so accuracy is not trivially 1.0
    rng = np.random.default_rng(2)
    x = np.clip(x * rng.normal(1.0, 0.6, size=(n, len(bands), 1, 1)), 1, 65535).astype(np.uint16)
    spec = ModelSpec.for_bands("smallcnn", bands)
    cut = int(n * 0.8)
    out: dict[str, Any] = {"chips": n, "epochs": epochs}
    for dev in ("cpu", "cuda"):
        device = torch.device(dev)
        torch.manual_seed(0)
        model = build_model(spec)
        c = replace(cfg, arch="smallcnn", epochs=epochs, patience=0, batch_size=64, device=dev)
        tr = ChipBatches(x[:cut], y[:cut], spec, device)
        te = ChipBatches(x[cut:], y[cut:], spec, device)
        res = fit(model, tr, te, c)
        pred = predict_logits(res.model, te, amp=c.amp).argmax(1).cpu().numpy()
        out[f"{dev}_test_accuracy"] = round(float((pred == y[cut:]).mean()), 4)
        if dev == "cpu":  # the CPU-trained weights, evaluated on the GPU: same predictions?
            gpu_model = res.model.to("cuda")
            gte = ChipBatches(x[cut:], y[cut:], spec, torch.device("cuda"))
            gpred = predict_logits(gpu_model, gte, amp=c.amp).argmax(1).cpu().numpy()
            out["same_weights_prediction_agreement"] = round(float((gpred == pred).mean()), 4)
    out["abs_difference"] = round(abs(out["cpu_test_accuracy"] - out["cuda_test_accuracy"]), 4)
    return out


def throughput(cfg: Any, n: int, epochs: int) -> dict[str, Any]:
    """Median training chips/s over epochs after the first (warm-up), full data path."""
    import torch

    from app_package.model.networks import build_model, resolve_device
    from app_package.model.spec import ModelSpec
    from app_package.training.batches import ChipBatches
    from app_package.training.loop import fit

    device = resolve_device(cfg.device)
    bands = cfg.resolved_bands()
    x, y = _synthetic(n, len(bands))
    spec = ModelSpec.for_bands(cfg.arch, bands)
    torch.manual_seed(0)
    model = build_model(spec)
    train = ChipBatches(x, y, spec, device, channels_last=cfg.channels_last)
    val = ChipBatches(x[:256], y[:256], spec, device, channels_last=cfg.channels_last)
    res = fit(model, train, val, replace(cfg, epochs=epochs, patience=0))
    rates = [h.chips_per_s for h in res.history]
    steady = rates[1:] or rates
    compute = compute_only(cfg, spec, train, steps=max(8, n // cfg.batch_size))
    return {
        "arch": cfg.arch,
        "device": str(device),
        "chips": n,
        "epochs": epochs,
        "batch_size": cfg.batch_size,
        "amp_bf16": cfg.amp,
        "channels_last": cfg.channels_last,
        "augment": cfg.augment,
        "chips_per_s_per_epoch": [round(r, 1) for r in rates],
        "chips_per_s_median": round(statistics.median(steady), 1),
        "compute_only_chips_per_s": round(compute, 1),
        "pipeline_share_of_compute": round(statistics.median(steady) / compute, 3),
        "cpu_load_average_1min": _loadavg(),
    }


def _loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return None


def compute_only(cfg: Any, spec: Any, data: Any, steps: int) -> float:
    """Forward+backward+step on one fixed, pre-normalised batch: the model's compute ceiling."""
    import torch

    from app_package.model.networks import build_model

    torch.manual_seed(0)
    model = build_model(spec).to(data.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    xb, yb = data.batch(torch.arange(min(cfg.batch_size, data.n)))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
            loss = torch.nn.functional.cross_entropy(model(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if data.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return len(yb) / statistics.median(times[2:])


def mlflow_overhead(cfg: Any, n: int, epochs: int) -> dict[str, Any]:
    """Training wall time with tracking off and on (sqlite store), same data, same process."""
    import torch

    from app_package.model.networks import build_model, resolve_device
    from app_package.model.spec import ModelSpec
    from app_package.training.batches import ChipBatches
    from app_package.training.loop import fit
    from app_package.training.tracking import Tracker

    device = resolve_device(cfg.device)
    bands = cfg.resolved_bands()
    x, y = _synthetic(n, len(bands))
    spec = ModelSpec.for_bands(cfg.arch, bands)
    cfg = replace(cfg, epochs=epochs, patience=0)
    train = ChipBatches(x, y, spec, device, channels_last=cfg.channels_last)
    val = ChipBatches(x[:256], y[:256], spec, device, channels_last=cfg.channels_last)

    def run_once(tracked: bool, folder: Path) -> tuple[float, float]:
        torch.manual_seed(0)
        model = build_model(spec)
        t0 = time.perf_counter()
        if not tracked:
            fit(model, train, val, cfg)
            return time.perf_counter() - t0, 0.0
        tracker = Tracker(f"sqlite:///{folder / 'mlflow.db'}", "bench")
        t0 = time.perf_counter()  # store creation (schema migration) is a one-off, not per run
        with tracker.start_run() as run:
            run.log_params(cfg.params())
            run.log_dataset(source="synthetic", digest="0" * 32, counts={"all": n},
                            split_counts={"train": n}, bands=bands)  # fmt: skip
            fit(model, train, val, cfg, on_epoch=run.log_epoch)
        return time.perf_counter() - t0, run.overhead_s

    with tempfile.TemporaryDirectory() as d:
        off, _ = run_once(False, Path(d))
        on, inside = run_once(True, Path(d))
        off2, _ = run_once(False, Path(d))
    off_mean = (off + off2) / 2
    return {
        "epochs": epochs,
        "chips": n,
        "wall_s_tracking_off": [round(off, 3), round(off2, 3)],
        "wall_s_tracking_on": round(on, 3),
        "seconds_inside_mlflow_calls": round(inside, 4),
        "mlflow_share_of_wall_time": round(inside / on, 5),
        "wall_time_difference_share": round((on - off_mean) / off_mean, 4),
        "store": "sqlite",
        "note": "per-epoch log_metrics + params + dataset lineage; model logging/registration "
        "is a one-off after training, timed separately in the real-data part",
    }


def spectral_features(x: np.ndarray) -> np.ndarray:
    xf = x.astype(np.float64)
    return np.concatenate([xf.mean((2, 3)), xf.std((2, 3))], axis=1)


def real_data_cv(
    cfg: Any, seed: int, folds: int, epochs: int, npz: Path | None = None
) -> dict[str, Any]:
    """k-fold CV of the training recipe vs the spectral baseline on the 270 real chips.

    The folds and inner validation splits depend on `cfg.seed` only (0 by default) and the
    baseline on the folds only; `seed` seeds the recipe (initial weights, batch order,
    augmentation), so another `seed` is another training run on the very same splits.
    """
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from app_package.model.networks import build_model, resolve_device
    from app_package.model.spec import ModelSpec
    from app_package.training.batches import ChipBatches
    from app_package.training.loop import fit, predict_logits
    from app_package.training.metrics import classification_report

    device = resolve_device(cfg.device)
    t_load = time.perf_counter()
    if npz is None:
        from app_package.data.dataset import load_labelled_chips
        from app_package.data.eurosat_stac import eurosat_to_stac
    if npz is not None:  # the same chips, exported by --export-npz (for machines without GDAL)
        z = np.load(npz)
        x_all, y_all, bands = z["x"], z["y"], tuple(str(b) for b in z["bands"])
    else:
        with tempfile.TemporaryDirectory() as d:
            stac = eurosat_to_stac(REAL_DATA, Path(d) / "stac")
            chips = load_labelled_chips(str(stac), bands=cfg.resolved_bands())
        x_all, y_all, bands = chips.x, chips.y, chips.bands
    load_s = time.perf_counter() - t_load
    spec = ModelSpec.for_bands(cfg.arch, bands)
    cfg = replace(cfg, epochs=epochs)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
    cnn_acc, base_acc, cnn_f1, base_f1, fit_s, epochs_run = [], [], [], [], [], []
    for k, (tr, te) in enumerate(skf.split(x_all, y_all)):
        # the recipe: an inner stratified validation split of the training fold (early stopping)
        itr, iva = train_test_split(
            np.arange(len(tr)), test_size=0.15, stratify=y_all[tr], random_state=k
        )
        torch.manual_seed(cfg.seed + seed + k)
        model = build_model(spec)
        mk = lambda idx: ChipBatches(x_all[idx], y_all[idx], spec, device)  # noqa: E731
        t0 = time.perf_counter()
        res = fit(model, mk(tr[itr]), mk(tr[iva]), replace(cfg, seed=cfg.seed + seed + k))
        fit_s.append(time.perf_counter() - t0)
        epochs_run.append(len(res.history))
        pred = predict_logits(res.model, mk(te), amp=cfg.amp).argmax(1).cpu().numpy()
        rep = classification_report(y_all[te], pred, spec.classes)
        cnn_acc.append(rep["accuracy"])
        cnn_f1.append(rep["macro_f1"])
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0))
        clf.fit(spectral_features(x_all[tr]), y_all[tr])
        bp = clf.predict(spectral_features(x_all[te]))
        brep = classification_report(y_all[te], bp, spec.classes)
        base_acc.append(brep["accuracy"])
        base_f1.append(brep["macro_f1"])
        print(f"fold {k + 1}/{folds}: recipe {rep['accuracy']:.3f}, baseline "
              f"{brep['accuracy']:.3f} ({fit_s[-1]:.1f} s)", file=sys.stderr)  # fmt: skip
    return {
        "data": str(npz or REAL_DATA),
        "chips": len(y_all),
        "load_s": round(load_s, 2),
        "folds": folds,
        "recipe": {k: v for k, v in cfg.params().items() if k not in ("stac", "output")},
        "recipe_seed": seed,
        "model_head": spec.extra,
        "recipe_accuracy_per_fold": [round(a, 4) for a in cnn_acc],
        "recipe_accuracy_mean": round(float(np.mean(cnn_acc)), 4),
        "recipe_accuracy_std": round(float(np.std(cnn_acc)), 4),
        "recipe_macro_f1_mean": round(float(np.mean(cnn_f1)), 4),
        "recipe_epochs_run": epochs_run,
        "recipe_fit_seconds": [round(s, 1) for s in fit_s],
        "baseline": "logistic regression (sklearn, standardised) on per-band mean and std",
        "baseline_accuracy_per_fold": [round(a, 4) for a in base_acc],
        "baseline_accuracy_mean": round(float(np.mean(base_acc)), 4),
        "baseline_accuracy_std": round(float(np.std(base_acc)), 4),
        "baseline_macro_f1_mean": round(float(np.mean(base_f1)), 4),
        "recipe_beats_baseline": bool(np.mean(cnn_acc) > np.mean(base_acc)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train.json")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--arch", default="smallcnn")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 CPU, 512 CUDA")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run in ~1 min")
    p.add_argument("--cv-epochs", type=int, default=30, help="epochs per fold (default: 30)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--skip-cv", action="store_true", help="no real-data cross-validation")
    p.add_argument("--cv-npz", type=Path, default=None,
                   help="read the real chips from this .npz (made by --export-npz)")  # fmt: skip
    p.add_argument("--export-npz", type=Path, default=None,
                   help="write the real chips (x, y, bands) to this .npz and exit")  # fmt: skip
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--lr", type=float, default=1e-3, help="CV recipe learning rate")
    p.add_argument("--patience", type=int, default=5, help="CV recipe early-stopping patience")
    p.add_argument("--seed", type=int, default=0,
                   help="CV recipe seed (weights, batches); the folds do not change")  # fmt: skip
    p.add_argument("--cpu-baseline", action="store_true",
                   help="also measure the default model on 2 CPU threads (same run)")  # fmt: skip
    args = p.parse_args(argv)

    import torch

    from app_package.training.config import TrainConfig

    torch.set_num_threads(args.threads)
    if args.export_npz:
        with tempfile.TemporaryDirectory() as d:
            from app_package.data.dataset import load_labelled_chips
            from app_package.data.eurosat_stac import eurosat_to_stac

            ch = load_labelled_chips(str(eurosat_to_stac(REAL_DATA, Path(d) / "stac")))
        np.savez(args.export_npz, x=ch.x, y=ch.y, bands=np.array(ch.bands))
        return 0
    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    bs = args.batch_size or (512 if cuda else 64)
    cfg = TrainConfig(stac="bench", output=Path("bench"), arch=args.arch, device=args.device,
                      batch_size=bs)  # fmt: skip
    if cuda:
        n, epochs = (8192, 3) if args.quick else (32768, 5)
    else:
        n, epochs = (512, 3) if args.quick else (2048, 4)
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
        },
        "command": " ".join(["python -m bench.train_bench", *(argv or sys.argv[1:])]),
    }
    t0 = time.perf_counter()
    if not args.skip_throughput:
        results["throughput"] = throughput(cfg, n, epochs)
        tp = results["throughput"]["chips_per_s_median"]
        print(f"throughput: {tp} chips/s", file=sys.stderr)
    try:
        if args.skip_throughput:
            raise ImportError
        import mlflow  # noqa: F401
    except ImportError:
        results["mlflow_overhead"] = "skipped: mlflow not installed here, or --skip-throughput"
    else:
        results["mlflow_overhead"] = mlflow_overhead(cfg, min(n, 2048), epochs)
        print(f"mlflow share: {results['mlflow_overhead']['mlflow_share_of_wall_time']}",
              file=sys.stderr)  # fmt: skip
    if cuda:
        results["cuda_vs_cpu_accuracy"] = cuda_vs_cpu(cfg, 2000 if args.quick else 4000, 10)
        print(f"cuda vs cpu: {results['cuda_vs_cpu_accuracy']}", file=sys.stderr)
    if args.cpu_baseline:
        torch.set_num_threads(2)
        cpu_cfg = replace(cfg, arch="smallcnn", device="cpu", batch_size=64)
        results["cpu_2_threads_throughput"] = throughput(cpu_cfg, 1024, 3)
    if not args.skip_cv and (REAL_DATA.is_dir() or args.cv_npz):
        cv_cfg = replace(cfg, batch_size=args.batch_size or 64, lr=args.lr, patience=args.patience)
        results["real_data_cv"] = real_data_cv(
            cv_cfg,
            args.seed,
            2 if args.quick else args.folds,
            5 if args.quick else args.cv_epochs,
            args.cv_npz,
        )
    elif not args.skip_cv:
        results["real_data_cv"] = f"skipped: {REAL_DATA} not found"
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
