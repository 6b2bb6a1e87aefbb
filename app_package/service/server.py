"""`app-package serve`: pygeoapi's Starlette app under uvicorn, with the service's own job
endpoints in front of it (`app.Service`). Jobs run in child processes (`app_package.jobs`),
supervised by each server worker (started and stopped through the ASGI lifespan);
`serve --workers N` runs N uvicorn workers on one port over a shared job store.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from app_package.errors import InputError
from app_package.jobs.config import ManagerConfig
from app_package.service.app import Service
from app_package.service.config import DEFAULT_MAX_BODY, config_path, prepare_environment
from app_package.util.redact import redact

logger = logging.getLogger(__name__)


def build_app(max_body: int | None = None) -> Service:
    """Import pygeoapi's app (it reads PYGEOAPI_CONFIG / PYGEOAPI_OPENAPI) and wrap it.

    Also the factory each server worker calls
    (`uvicorn --factory app_package.service.server:build_app`).
    """
    from pygeoapi import starlette_app

    logging.getLogger("pygeoapi.l10n").setLevel(logging.ERROR)  # noise on every description
    api = starlette_app.api_
    if max_body is None:
        max_body = int(api.config["server"].get("max_body_bytes", DEFAULT_MAX_BODY))
    return Service(starlette_app.APP, api, max_body)


def check_workers(workers: int, cfg: dict[str, Any]) -> str:
    """The job store connection, if `workers` server processes can share it; else InputError.

    Both stores serve several workers: the SQLite file those on one host, PostgreSQL those on
    any hosts.
    """
    if workers < 1:
        raise InputError(f"workers {workers}: must be 1 or more", field="workers")
    return ManagerConfig.parse(cfg["server"]["manager"]).connection


def serve(
    host: str = "127.0.0.1", port: int = 5000, config: Path | None = None, workers: int = 1
) -> None:
    """Start the server until interrupted: `workers` uvicorn processes on one port.

    Each worker runs a job supervisor (jobs run in child processes); with more than one worker
    the job store must be PostgreSQL. uvicorn restarts a worker that dies.
    """
    import uvicorn

    cfg = prepare_environment(host, port, config_path(config))
    connection = check_workers(workers, cfg)
    logger.info(
        "serving on %s, %d worker(s), jobs in %s",
        os.environ["APP_PACKAGE_URL"],
        workers,
        redact(connection),
    )
    if workers == 1:
        uvicorn.run(build_app(), host=host, port=port, log_level="warning", lifespan="on")
        return
    uvicorn.run(
        "app_package.service.server:build_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
    )
