"""`app-package serve`: pygeoapi's Starlette app under uvicorn, with service-grade job endpoints.

pygeoapi serves the landing page, process descriptions, OpenAPI, HTML and STAC browsing. This
module answers the job endpoints itself (execute, job list, status, dismiss, results, conformance)
so that exception types, status codes, `Prefer` handling and input validation follow OGC
18-062r2, and serves the job outputs under `/outputs/`. Jobs run in child processes
(`app_package.jobs.manager`), supervised by each server worker (started and stopped through the ASGI
lifespan); `serve --workers N` runs N uvicorn workers on one port over a PostgreSQL job store.
A job store that cannot be reached is answered with 503 and `Retry-After`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pygeoapi.util import JobStatus

from app_package.defaults import DEFAULT_CONFIG
from app_package.errors import InputError
from app_package.jobs.records import TERMINAL, status_of
from app_package.jobs.store import JobStoreUnavailable
from app_package.util.redact import redact

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1_000_000

ASGIApp = Callable[..., Awaitable[None]]


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


EXCEPTION_SCHEMA = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
EXECUTE_SCHEMA = {
    "type": "object",
    "properties": {
        "inputs": {"type": "object"},
        "outputs": {"type": "object"},
        "response": {"type": "string", "enum": ["raw", "document"]},
        "subscriber": {
            "type": "object",
            "required": ["successUri"],
            "properties": {
                "successUri": {"type": "string", "format": "uri"},
                "inProgressUri": {"type": "string", "format": "uri"},
                "failedUri": {"type": "string", "format": "uri"},
            },
        },
    },
}


def _inline_remote_refs(node: Any, key: str = "") -> Any:
    """Replace $refs to schemas.opengis.net (unreachable offline) by inline equivalents."""
    if isinstance(node, list):
        return [_inline_remote_refs(v) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("http"):
        name = ref.rsplit("/", 1)[-1].removesuffix(".yaml")
        if key == "schema":
            return dict(EXECUTE_SCHEMA if name == "execute" else EXCEPTION_SCHEMA)
        body = EXCEPTION_SCHEMA if name in ("NotFound", "ServerError", "InvalidParameter") else {}
        schema = body or {"type": "object"}
        return {"description": name, "content": {"application/json": {"schema": dict(schema)}}}
    return {k: _inline_remote_refs(v, k) for k, v in node.items()}


def patch_openapi(oas: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """Make the generated document self-contained and say what the job endpoints answer."""
    oas = _inline_remote_refs(oas)
    paths = oas.get("paths", {})
    exc = {"$ref": "#/components/responses/default"}
    for path, ops in paths.items():
        if path.endswith("/execution"):
            post = ops["post"]
            post["responses"]["400"] = {"description": "invalid execute request", **{}}
            post["responses"]["413"] = {"description": "request body too large"}
            post["parameters"][0]["schema"] = {"type": "string"}
        if path == "/jobs/{jobId}":
            ops["delete"]["responses"] = {
                "200": {"description": "the job, now dismissed (statusInfo)"},
                "404": exc,
            }
        if path == "/jobs":
            ops["get"]["parameters"] = [
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                {"name": "offset", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 0}},
            ]  # fmt: skip
            ops["get"]["responses"]["400"] = exc
    return oas


class Service:
    """The job endpoints, in front of pygeoapi's own Starlette app."""

    def __init__(self, pygeoapi_app: ASGIApp, api: Any, max_body: int) -> None:
        from starlette.staticfiles import StaticFiles

        from app_package.jobs.manager import ChildProcessManager

        self.app = pygeoapi_app
        self.api = api
        self.manager: ChildProcessManager = api.manager
        self.base_url = str(api.base_url).rstrip("/")
        self.policy = self.manager.config.href_policy
        self.max_body = max_body
        self._descriptions: dict[str, dict[str, Any]] = {}
        self.outputs = StaticFiles(directory=self.manager.output_dir, check_dir=False)
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Awaitable[Any]]]] = [
            ("POST", re.compile(r"/processes/(?P<pid>[^/]+)/execution/?"), self.execute),
            ("GET", re.compile(r"/processes/(?P<pid>[^/]+)/?"), self.describe),
            ("GET", re.compile(r"/jobs/?"), self.jobs),
            ("GET", re.compile(r"/jobs/(?P<job_id>[^/]+)/?"), self.job),
            ("DELETE", re.compile(r"/jobs/(?P<job_id>[^/]+)/?"), self.dismiss),
            ("GET", re.compile(r"/jobs/(?P<job_id>[^/]+)/results/?"), self.results),
            ("GET", re.compile(r"/conformance/?"), self.conformance),
        ]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from starlette.requests import Request

        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            resp = self.error(413, "payload-too-large", f"request body over {self.max_body} bytes")
            await resp(scope, receive, send)
            return
        if path.startswith("/outputs/"):
            from starlette.exceptions import HTTPException

            sub = dict(scope, path=path[len("/outputs") :], root_path="")
            try:
                await self.outputs(sub, receive, send)
            except HTTPException as e:  # StaticFiles raises for 404 / 405
                resp = self.error(e.status_code, "not-found", f"{path}: {e.detail}")
                await resp(scope, receive, send)
            return
        for verb, pattern, handler in self.routes:
            m = pattern.fullmatch(path)
            if m and verb == method:
                from app_package.service.ogc import OGCError

                try:
                    resp = await handler(Request(scope, receive), **m.groupdict())
                except OGCError as e:
                    resp = self.exception(e)
                except JobStoreUnavailable as e:  # answered, not hung: clients retry
                    logger.warning("%s %s: %s", method, path, e)
                    resp = self.exception(OGCError(503, "about:blank", str(e)))
                    resp.headers["Retry-After"] = "2"
                if resp is None:
                    break
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def lifespan(self, receive: Any, send: Any) -> None:
        """Start this worker's job supervisor with the server, stop it (and its jobs) after."""
        from starlette.concurrency import run_in_threadpool

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await run_in_threadpool(self.manager.start)
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                logger.info("worker %d: jobs in %s", os.getpid(), redact(self.manager.store.url))
                # the ~94,000 objects of the imports and the configuration never die: frozen
                # out of the collector's way, a full collection (~58 ms over them, measured on
                # this app) no longer stalls a request burst
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await run_in_threadpool(self.manager.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------ helpers
    def exception(self, e: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse(e.document(), status_code=e.status)

    def error(self, status: int, kind: str, detail: str) -> Any:
        from app_package.service.ogc import EXCEPTIONS, OGCError

        return self.exception(OGCError(status, EXCEPTIONS + kind, detail))

    def json(self, doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        import orjson
        from starlette.responses import Response

        return Response(
            orjson.dumps(doc, default=str), status_code=status, headers=headers,
            media_type="application/json",
        )  # fmt: skip

    def _job(self, job_id: str) -> dict[str, Any]:
        from pygeoapi.process.base import JobNotFoundError

        from app_package.service.ogc import NO_SUCH_JOB, OGCError

        try:
            return self.manager.get_job(job_id)
        except JobNotFoundError as e:
            raise OGCError(404, NO_SUCH_JOB, f"no job with id {job_id!r}") from e

    def _process(self, pid: str) -> dict[str, Any]:
        from app_package.service.ogc import NO_SUCH_PROCESS, OGCError

        if pid not in self.manager.processes:
            raise OGCError(
                404, NO_SUCH_PROCESS,
                f"no process {pid!r}; processes: {', '.join(self.manager.processes)}",
            )  # fmt: skip
        meta = self._descriptions.get(pid)
        if meta is None:  # the configured processes do not change while the server runs
            meta = dict(self.manager.get_processor(pid).metadata)
            meta["id"] = pid
            self._descriptions[pid] = meta
        return meta

    # ------------------------------------------------------------ handlers
    async def describe(self, request: Any, pid: str) -> Any:
        self._process(pid)
        return None  # known: pygeoapi describes it

    async def conformance(self, request: Any) -> Any:
        from app_package.service.ogc import CONFORMANCE

        if request.query_params.get("f") == "html":
            return None
        return self.json({"conformsTo": CONFORMANCE})

    async def execute(self, request: Any, pid: str) -> Any:
        from starlette.concurrency import run_in_threadpool

        from app_package.jobs.status import status_info
        from app_package.service.execute import validate_execute
        from app_package.service.ogc import choose_mode, invalid, parse_prefer

        description = self._process(pid)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                return self.error(413, "payload-too-large", f"body over {self.max_body} bytes")
        try:
            doc = json.loads(body or b"null")
        except ValueError as e:
            raise invalid(f"the request body is not valid JSON: {e}") from e
        inputs, subscriber = await run_in_threadpool(
            validate_execute, description, doc, self.policy
        )
        prefs = parse_prefer(request.headers.getlist("prefer"))
        mode = choose_mode(description.get("jobControlOptions", []), prefs)
        key = request.headers.get("idempotency-key") or None  # a retry gets the same job
        if key is not None and not 1 <= len(key) <= 200:
            raise invalid("the Idempotency-Key header must be 1 to 200 characters")
        job = await run_in_threadpool(self.manager.submit_job, pid, inputs, subscriber, key)
        job_id = job["identifier"]
        location = f"{self.base_url}/jobs/{job_id}"
        headers = {"Location": location}
        if mode == "async":
            if "respond-async" in prefs:
                headers["Preference-Applied"] = "respond-async"
            return self.json(status_info(job, self.base_url), 201, headers)
        wait = prefs.get("wait", "")
        if wait.isdigit():
            headers["Preference-Applied"] = f"wait={wait}"
        while True:
            job = await run_in_threadpool(self.manager.get_job, job_id)
            if status_of(job) in TERMINAL:
                break
            await asyncio.sleep(0.2)
        if status_of(job) is not JobStatus.successful:
            return self._failed(job, headers)
        _, result = await run_in_threadpool(self.manager.get_job_result, job_id)
        if doc.get("response") == "document":
            result = {"outputs": {"catalog": result}}
        return self.json(result, 200, headers)

    def _failed(self, job: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        from app_package.service.ogc import JOB_DISMISSED, JOB_FAILED, OGCError

        if status_of(job) is JobStatus.dismissed:
            e = OGCError(404, JOB_DISMISSED, f"job {job['identifier']} was dismissed")
        else:
            status = 400 if job.get("error_kind") == "input" else 500
            e = OGCError(status, JOB_FAILED, job.get("message") or "the job failed")
        resp = self.exception(e)
        resp.headers.update(headers or {})
        return resp

    async def jobs(self, request: Any) -> Any:
        from starlette.concurrency import run_in_threadpool

        from app_package.jobs.status import status_info
        from app_package.service.ogc import invalid

        if request.query_params.get("f") == "html":
            return None
        try:
            limit = int(request.query_params.get("limit", 100))
            offset = int(request.query_params.get("offset", 0))
        except ValueError as e:
            raise invalid("'limit' and 'offset' must be integers") from e
        if not 1 <= limit <= 1000 or offset < 0:
            raise invalid("'limit' must be in 1..1000 and 'offset' ≥ 0")
        found = await run_in_threadpool(self.manager.get_jobs, None, limit, offset)
        url = f"{self.base_url}/jobs"
        links = [{"href": f"{url}?limit={limit}&offset={offset}", "rel": "self",
                  "type": "application/json", "title": "this list of jobs"}]  # fmt: skip
        if offset + limit < found["numberMatched"]:
            links.append({"href": f"{url}?limit={limit}&offset={offset + limit}", "rel": "next",
                          "type": "application/json"})  # fmt: skip
        if offset > 0:
            links.append({"href": f"{url}?limit={limit}&offset={max(0, offset - limit)}",
                          "rel": "prev", "type": "application/json"})  # fmt: skip
        return self.json(
            {
                "jobs": [status_info(j, self.base_url) for j in found["jobs"]],
                "links": links,
                "numberMatched": found["numberMatched"],
            }
        )

    async def job(self, request: Any, job_id: str) -> Any:
        from starlette.concurrency import run_in_threadpool

        from app_package.jobs.status import status_info

        if request.query_params.get("f") == "html":
            return None
        job = await run_in_threadpool(self._job, job_id)
        return self.json(status_info(job, self.base_url))

    async def dismiss(self, request: Any, job_id: str) -> Any:
        from starlette.concurrency import run_in_threadpool

        from app_package.jobs.status import status_info

        await run_in_threadpool(self._job, job_id)
        job = await run_in_threadpool(self.manager.dismiss, job_id)
        return self.json(status_info(job, self.base_url))

    async def results(self, request: Any, job_id: str) -> Any:
        from starlette.concurrency import run_in_threadpool

        from app_package.service.ogc import RESULT_NOT_READY, OGCError

        job = await run_in_threadpool(self._job, job_id)
        if status_of(job) not in TERMINAL:
            raise OGCError(404, RESULT_NOT_READY, f"job {job_id} is {job['status']}: poll it")
        if status_of(job) is not JobStatus.successful:
            return self._failed(job)
        _, result = await run_in_threadpool(self.manager.get_job_result, job_id)
        return self.json(result)


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
    from app_package.jobs.config import ManagerConfig

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
    logger.info("serving on %s, %d worker(s), jobs in %s", os.environ["APP_PACKAGE_URL"],
                workers, redact(connection))  # fmt: skip
    if workers == 1:
        uvicorn.run(build_app(), host=host, port=port, log_level="warning", lifespan="on")
        return
    uvicorn.run(
        "app_package.service.server:build_app", factory=True, workers=workers, host=host, port=port,
        log_level="warning", lifespan="on",
    )  # fmt: skip
