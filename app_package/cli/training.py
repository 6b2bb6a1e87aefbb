"""`train` and `best-model`: a training run tracked in MLflow, and the model to use."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app_package.cli.common import progress_bar
from app_package.defaults import MODEL_NAME


def _add_train(sub: Any) -> None:
    from app_package.training.config import LR_SCHEDULES, OPTIMIZERS, TrainConfig

    d = TrainConfig(stac="", output=Path())
    p = sub.add_parser(
        "train",
        help="train a classifier on labelled chips from STAC, track it in MLflow, write a STAC "
        "MLM catalog",
    )
    p.add_argument("--stac", required=True, help="training data: STAC catalog/collection or API")
    p.add_argument("--output", required=True, type=Path, help="output folder (must not exist)")
    p.add_argument(
        "--bands",
        default=None,
        help="comma-separated bands, e.g. B02,B03,B04,B08 (default: the 12 without B10, which "
        "L1C and L2A products both have)",
    )
    p.add_argument("--arch", default=d.arch, help=f"smallcnn or resnet18 (default: {d.arch})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default: {d.epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default: {d.batch_size}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default: {d.lr})")
    p.add_argument(
        "--optimizer", default=d.optimizer, choices=OPTIMIZERS, help=f"default: {d.optimizer}"
    )
    p.add_argument(
        "--weight-decay", type=float, default=d.weight_decay, help=f"default: {d.weight_decay}"
    )
    p.add_argument(
        "--lr-schedule",
        default=d.lr_schedule,
        choices=LR_SCHEDULES,
        help=f"default: {d.lr_schedule}",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help=f"early-stopping patience in epochs, 0 = off (default: {d.patience})",
    )
    p.add_argument(
        "--samples-per-class",
        type=int,
        default=None,
        help="draw this many chips per class (default: all)",
    )
    p.add_argument(
        "--val-fraction", type=float, default=d.val_fraction, help=f"default: {d.val_fraction}"
    )
    p.add_argument(
        "--test-fraction", type=float, default=d.test_fraction, help=f"default: {d.test_fraction}"
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"default: {d.seed}")
    p.add_argument("--device", default=d.device, help="auto (CUDA when present), cpu or cuda")
    p.add_argument(
        "--radiometric",
        type=float,
        default=d.radiometric,
        metavar="STRENGTH",
        help="strength of random radiometric shifts of training chips (brightness, band gains, "
        f"haze and its removal), 0 = off, 1 spans real products (default: {d.radiometric})",
    )
    p.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no random flips/rotations of training chips",
    )
    p.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="keep the early-stopping epoch's weights instead of refitting on train + validation "
        "chips for that many epochs",
    )
    p.add_argument(
        "--no-amp",
        dest="amp",
        action="store_false",
        help="train in float32 instead of bf16 autocast",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument("--experiment", default=d.experiment, help=f"default: {d.experiment}")
    p.add_argument(
        "--model-name",
        default=d.model_name,
        help=f"registered model name (default: {d.model_name})",
    )
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import json

    from app_package.training.config import TrainConfig
    from app_package.training.train import train

    config = TrainConfig(
        stac=args.stac,
        output=args.output,
        bands=tuple(args.bands.split(",")) if args.bands else None,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        patience=args.patience,
        samples_per_class=args.samples_per_class,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        device=args.device,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        model_name=args.model_name,
        augment=args.augment,
        radiometric=args.radiometric,
        amp=args.amp,
        refit=args.refit,
    )
    with progress_bar("train") as progress:
        result = train(config, progress)
    summary = {
        "run_id": result.run_id,
        "model_uri": result.model_uri,
        "is_champion": result.is_champion,
        "test_accuracy": result.test_metrics["accuracy"],
        "test_macro_f1": result.test_metrics["macro_f1"],
        "epochs_run": result.epochs_run,
        "catalog": str(result.catalog),
    }
    print(json.dumps(summary, indent=2))
    return 0


def _add_best_model(sub: Any) -> None:
    p = sub.add_parser(
        "best-model",
        help="print a loadable model URI: <name>@champion, or an experiment's best run by a metric",
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument(
        "--model-name",
        default=MODEL_NAME,
        help="registered model whose champion to return (default: eurosat-classifier)",
    )
    p.add_argument(
        "--experiment", default=None, help="instead, the best finished run of this experiment"
    )
    p.add_argument(
        "--metric",
        default="test_accuracy",
        help="metric ranking runs with --experiment (default: test_accuracy)",
    )
    order = p.add_mutually_exclusive_group()
    order.add_argument(
        "--min",
        dest="ascending",
        action="store_const",
        const=True,
        help="lower is better (default for *loss* metrics)",
    )
    order.add_argument(
        "--max",
        dest="ascending",
        action="store_const",
        const=False,
        help="higher is better (default otherwise)",
    )
    p.set_defaults(handler=_run_best_model)


def _run_best_model(args: argparse.Namespace) -> int:
    from app_package.training.tracking import best_model_uri

    print(
        best_model_uri(
            tracking_uri=args.tracking_uri,
            model_name=args.model_name,
            experiment=args.experiment,
            metric=args.metric,
            ascending=args.ascending,
        )
    )
    return 0


def register(sub: Any) -> None:
    _add_train(sub)
    _add_best_model(sub)
