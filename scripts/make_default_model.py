"""Build the default model the package ships (app_package/model/default/) from ../shared/data.

Run once by a developer (`.venv/bin/python scripts/make_default_model.py`); the result is
committed. It trains the current default recipe (`TrainConfig()`: SmallCNN with the
chip-statistics head, the 12 bands without B10, radiometric augmentation 1, seed 0) on every real
EuroSAT-MS chip the project has (the 270 of ../shared: train/ and test/ together; the recipe
holds out its own validation and test split, whose metrics are shipped with the model), into a
throwaway MLflow store, and keeps the run's output catalog: the MLM item, `model.pt`,
`model.onnx`, `model.json`, the test metrics and the confusion matrix. The server registers it
as `eurosat-classifier` version 1 (`champion`) on first start with an empty registry
(`app_package.training.default_model`).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHIPS = REPO.parent / "shared" / "data" / "eurosat-ms-subset"
DEST = REPO / "app_package" / "model" / "default"
TEMPORARY_RELS = ("via", "derived_from")  # the throwaway MLflow run and chip catalog
# the land-cover benchmark of this recipe (`python -m bench.landcover_bench`), quoted in the item
LANDCOVER_RESULTS = REPO / "bench" / "results" / "landcover.json"


def measured_accuracies() -> dict[str, object]:
    """What bench.landcover_bench measured for the default recipe (empty when not run): one
    property of the item (`app-package:measured`), since stac-check counts more than 20 as
    bloated."""
    if not LANDCOVER_RESULTS.is_file():
        return {}
    doc = json.loads(LANDCOVER_RESULTS.read_text())
    after = doc["stability"]["after"]
    cv = doc.get("cross_validation", {}).get("radiometric_1", {})
    run0 = next(r for r in after["runs"] if r["seed"] == 0)
    out: dict[str, object] = {
        "reference_agreement": {
            "product": "bundled L1C subset T33UUU 2017-02-16, stride 16",
            "balanced_accuracy": run0["reference"]["balanced_accuracy"],
            "overall_accuracy": run0["reference"]["overall_accuracy"],
            "per_class": run0["reference"]["per_class"],
        },
        "seed_agreement": after["pairwise_agreement"],
    }
    if cv:
        out["cv_accuracy"] = {name: v["mean"] for name, v in cv.items()}
    return out


def main() -> int:
    from app_package.data.eurosat_stac import eurosat_to_stac
    from app_package.training.config import TrainConfig
    from app_package.training.train import train

    if not CHIPS.is_dir():
        print(f"the real chips are not at {CHIPS}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        catalog = eurosat_to_stac(CHIPS, tmp_path / "stac")  # train/ and test/: class folders
        config = TrainConfig(
            stac=str(catalog),
            output=tmp_path / "run",
            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            experiment="default-model",
        )
        result = train(config)
        if DEST.exists():
            shutil.rmtree(DEST)
        shutil.copytree(result.catalog.parent, DEST)
    # the run's MLflow store and the catalog of the chips were temporary: drop their links (and
    # the run's ids), say in the description where the model came from
    for item_file in DEST.glob("*/*.json"):
        item = json.loads(item_file.read_text())
        if item.get("type") != "Feature":
            continue
        item["links"] = [lk for lk in item["links"] if lk.get("rel") not in TEMPORARY_RELS]
        props = item["properties"]
        for key in ("mlflow:run_id", "mlflow:model_uri"):
            props.pop(key, None)
        props["description"] = (
            f"{props['mlm:architecture']} on the 12 Sentinel-2 bands L1C and L2A products share "
            "(no B10), trained with radiometric augmentation (strength "
            f"{props['mlm:hyperparameters'].get('radiometric')}) on the 270 real EuroSAT-MS "
            "chips of the project (EuroSAT, MIT licence, Helber et al. 2019; its train and test "
            f"subsets together); test accuracy {result.test_metrics['accuracy']:.4f}, macro F1 "
            f"{result.test_metrics['macro_f1']:.4f} on the recipe's own held-out test split; "
            "5-fold CV on clean and shifted chips, agreement with reference polygons on a real "
            "product and between seeds in app-package:measured (bench/results/landcover.json). "
            "Weights as a PyTorch state_dict and as ONNX. The server registers it in MLflow as "
            "eurosat-classifier version 1."
        )
        props["app-package:measured"] = {
            "test_accuracy": round(float(result.test_metrics["accuracy"]), 4),
            **measured_accuracies(),
        }
        item_file.write_text(json.dumps(item, indent=2) + "\n")
    print(
        json.dumps(
            {
                "test_accuracy": result.test_metrics["accuracy"],
                "epochs_run": result.epochs_run,
                "dest": str(DEST),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
