"""Package-wide defaults and the resources shipped inside the package, each defined once."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

# the bundled real sample (credits in sample/README.md): default training data and product
SAMPLE_DIR = PACKAGE_DIR / "sample"
SAMPLE_CATALOG = SAMPLE_DIR / "eurosat" / "catalog.json"
SAMPLE_PRODUCT = SAMPLE_DIR / "s2-l1c" / "item.json"

# the STAC extension schemas that offline validation reads
SCHEMAS_DIR = PACKAGE_DIR / "schemas"

# the default server configuration and the CWL packages it names, shipped as package data (in a
# checkout these are links to the top-level pygeoapi-config.yml and cwl/, the files users edit)
CONFIG_DIR = PACKAGE_DIR / "config"
DEFAULT_CONFIG = CONFIG_DIR / "pygeoapi-config.yml"

# the MLflow registry's model name and the alias that marks the best version
MODEL_NAME = "eurosat-classifier"
CHAMPION_ALIAS = "champion"
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}"

# the OGC process ids (also the CWL packages' entry points)
TRAINING_PROCESS = "eurosat-training"
CLASSIFICATION_PROCESS = "tile-classification"
WATER_BODIES_PROCESS = "water-bodies"
EVALUATION_PROCESS = "map-evaluation"

# the model the package ships (scripts/make_default_model.py): registered as MODEL_NAME version 1
# (CHAMPION_ALIAS) when a server starts on an empty registry, so classification works at once
DEFAULT_MODEL_CATALOG = PACKAGE_DIR / "model" / "default" / "catalog.json"
DEFAULT_MODEL_EXPERIMENT = "default-model"
