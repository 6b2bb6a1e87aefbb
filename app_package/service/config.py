"""The server's configuration: which pygeoapi configuration file, and the environment and
OpenAPI document prepared from it before pygeoapi is imported."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from app_package.defaults import DEFAULT_CONFIG
from app_package.errors import InputError
from app_package.service.openapi import patch_openapi

DEFAULT_MAX_BODY = 1_000_000


def config_path(path: Path | None = None) -> Path:
    """The pygeoapi configuration: the argument, $APP_PACKAGE_CONFIG or the bundled file."""
    p = path or Path(os.environ.get("APP_PACKAGE_CONFIG", DEFAULT_CONFIG))
    if not p.is_file():
        raise InputError(
            f"pygeoapi configuration {p} not found: point APP_PACKAGE_CONFIG at one",
            field="config",
        )
    return p


def prepare_environment(host: str, port: int, config: Path) -> dict[str, Any]:
    """Set the variables the config refers to (data dir, URL), write the OpenAPI document.

    Returns the loaded configuration. Only the data dir is written to.
    """
    from pygeoapi.openapi import get_oas
    from pygeoapi.util import yaml_load

    data_dir = Path(os.environ.get("APP_PACKAGE_DATA_DIR", "var")).resolve()
    os.environ["APP_PACKAGE_DATA_DIR"] = str(data_dir)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    os.environ.setdefault("APP_PACKAGE_URL", f"http://{shown}:{port}")
    os.environ["PYGEOAPI_CONFIG"] = str(config.resolve())
    data_dir.mkdir(parents=True, exist_ok=True)
    with config.open(encoding="utf-8") as fh:
        cfg: dict[str, Any] = yaml_load(fh)
    oas = patch_openapi(get_oas(cfg, fail_on_invalid_collection=False), cfg)
    openapi = data_dir / "openapi.json"
    tmp = openapi.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(oas, default=str))
    tmp.rename(openapi)
    os.environ["PYGEOAPI_OPENAPI"] = str(openapi)
    return cfg
