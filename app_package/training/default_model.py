"""The shipped default model into an MLflow registry: when the registry has no
`eurosat-classifier` yet, the bundled weights (`defaults.DEFAULT_MODEL_CATALOG`) are logged in a
run of their own (with the test metrics they were shipped with) and registered as version 1,
alias `champion`. A registry that has the model already is left alone.

`python -m app_package.training.default_model TRACKING_URI` does it (the server runs this at
start-up in a process of its own, so the web worker never imports torch or MLflow).
"""

from __future__ import annotations

import json
import logging
import sys

import numpy as np

from app_package.defaults import (
    CHAMPION_ALIAS,
    DEFAULT_MODEL_CATALOG,
    DEFAULT_MODEL_EXPERIMENT,
    MODEL_NAME,
    SAMPLE_CATALOG,
)

logger = logging.getLogger(__name__)


def ensure_registered(tracking_uri: str) -> str | None:
    """Register the default model unless the registry has `MODEL_NAME`; the new version or
    None."""
    from mlflow.exceptions import MlflowException

    from app_package.data.eurosat import read_chip
    from app_package.model.source import STAC_ITEM_TAG, resolve_model
    from app_package.stac.io import items, read_json, resolve_href
    from app_package.training.tracking import Tracker

    tracker = Tracker(tracking_uri, DEFAULT_MODEL_EXPERIMENT)
    try:
        tracker.client.get_registered_model(MODEL_NAME)
    except MlflowException:
        pass
    else:
        return None
    ref = resolve_model(str(DEFAULT_MODEL_CATALOG))
    loaded = ref.load()
    ((item, href),) = list(items(str(DEFAULT_MODEL_CATALOG)))
    report = read_json(resolve_href(item["assets"]["metrics"]["href"], href))
    chips = [
        read_chip(resolve_href(i["assets"]["image"]["href"], h), loaded.spec.bands)
        for i, h in list(items(str(SAMPLE_CATALOG)))[:2]
    ]
    with tracker.start_run("default model") as run:
        run.log_params(
            {
                "source": "bundled default model",
                "item": item["id"],
                **item["properties"].get("mlm:hyperparameters", {}),
            }
        )
        run.set_tag("app_package.default_model", "true")
        if ref.item_href:  # the shipped MLM item, so class maps can link it
            run.set_tag(STAC_ITEM_TAG, ref.item_href)
        run.log_test_metrics(report)
        registered = run.log_model(
            loaded.module, loaded.spec, np.stack(chips), MODEL_NAME, onnx=ref.onnx_path()
        )
        tracker.client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, registered.version)
    logger.info("registered the default model as %s", registered.model_uri)
    return registered.version


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m app_package.training.default_model TRACKING_URI")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps({"registered_version": ensure_registered(args[0])}))


if __name__ == "__main__":
    main()
