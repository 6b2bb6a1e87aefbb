"""The service's own endpoints, in front of pygeoapi's Starlette app: execute, job list, status,
dismiss, results and conformance follow OGC 18-062r2 (exception types, status codes, `Prefer`,
input validation before a job exists); job outputs are served under `/outputs/`. Everything
else — landing page, process descriptions, OpenAPI, HTML and STAC browsing — is pygeoapi's,
reached as the router's last route. A job store that cannot be reached is answered with 503
and `Retry-After`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from pygeoapi.process.base import JobNotFoundError
from pygeoapi.util import JobStatus
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from app_package import __version__
from app_package.defaults import DEFAULT_MODEL_CATALOG, MODEL_NAME, SAMPLE_DIR
from app_package.jobs.manager import ChildProcessManager
from app_package.jobs.processor import tracking_uri
from app_package.jobs.records import TERMINAL, status_of
from app_package.jobs.status import status_info
from app_package.jobs.store import JobQuery, JobStoreUnavailable
from app_package.service import browse, health
from app_package.service.browser import browser_routes
from app_package.service.execute import validate_execute
from app_package.service.joblist import paging_links, parse_job_query
from app_package.service.ogc import (
    APP_EXCEPTIONS,
    CONFORMANCE,
    JOB_DISMISSED,
    JOB_FAILED,
    NO_SUCH_JOB,
    NO_SUCH_PROCESS,
    RESULT_NOT_READY,
    UNAVAILABLE,
    OGCError,
    choose_mode,
    invalid,
    parse_prefer,
)
from app_package.service.results import CATALOG_OUTPUT, results_answer
from app_package.stac.io import absolutise
from app_package.util.redact import redact

logger = logging.getLogger(__name__)

Endpoint = Callable[..., Awaitable[Response]]
RUNNING = frozenset({JobStatus.running.value})
DEFAULT_MODEL_TIMEOUT_S = 300.0


def cors_origins(setting: Any) -> list[str]:
    """The origins CORS lets in: `*` (anyone, read-only), a comma-separated list, or none."""
    if isinstance(setting, (list, tuple)):
        return [str(o).strip() for o in setting if str(o).strip()]
    return [o.strip() for o in str(setting or "").split(",") if o.strip()]


class Forward(Response):
    """Let pygeoapi answer this request (HTML pages, process descriptions)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class Service:
    """The job endpoints, in front of pygeoapi's own Starlette app."""

    def __init__(self, pygeoapi_app: ASGIApp, api: Any, max_body: int) -> None:
        self.app = pygeoapi_app
        self.api = api
        self.manager: ChildProcessManager = api.manager
        self.base_url = str(api.base_url).rstrip("/")
        self.policy = self.manager.config.href_policy
        # the MLflow store the processes track into (the first that names one)
        self.tracking_uri = next(
            (
                tracking_uri(r["processor"])
                for r in self.manager.processes.values()
                if "tracking_uri" in r["processor"]
            ),
            tracking_uri({"data_dir": str(self.manager.config.data_dir)}),
        )
        self.max_body = max_body
        self._descriptions: dict[str, dict[str, Any]] = {}
        # folders whose files outputs may link to, and where they are served: the job outputs,
        # the bundled sample (the default product and training data) and the shipped model
        default_model_dir = DEFAULT_MODEL_CATALOG.parent
        self.published = {
            self.manager.output_dir: self.manager.config.outputs_url,
            SAMPLE_DIR: f"{self.base_url}/sample",
            default_model_dir: f"{self.base_url}/default-model",
        }
        self.router = Router(
            routes=[
                *self._route("/processes/{pid}/execution", self.execute, "POST"),
                *self._route("/processes/{pid}", self.describe, "GET"),
                *self._route("/jobs", self.jobs, "GET"),
                *self._route("/jobs/{job_id}", self.job, "GET"),
                *self._route("/jobs/{job_id}", self.dismiss, "DELETE"),
                *self._route("/jobs/{job_id}/results", self.results, "GET"),
                *self._route("/conformance", self.conformance, "GET"),
                *self._route("/health", self.health, "GET"),
                *browser_routes(self.base_url),  # STAC Browser of the outputs
                Route("/outputs/" + browse.ROOT_CATALOG, self.outputs_catalog, methods=["GET"]),
                Route("/stac/outputs", self.outputs_catalog, methods=["GET"]),
                Route("/stac/outputs/{path:path}", self.stac_output, methods=["GET"]),
                Mount("/outputs", app=self.published_folder("/outputs", self.manager.output_dir)),
                Mount("/sample", app=self.published_folder("/sample", SAMPLE_DIR)),
                Mount(
                    "/default-model", app=self.published_folder("/default-model", default_model_dir)
                ),
                Mount("", app=pygeoapi_app),  # everything else, and other methods
            ],
            lifespan=None,
        )
        self.cors_origins = cors_origins(api.config["server"].get("cors_origins", "*"))
        self.entry: ASGIApp = self.router
        if self.cors_origins:
            self.entry = CORSMiddleware(
                self.router,
                allow_origins=self.cors_origins,
                # anyone may read; only origins named in the configuration may also submit
                # and dismiss jobs
                allow_methods=["GET", "HEAD"]
                if self.cors_origins == ["*"]
                else ["GET", "HEAD", "POST", "DELETE"],
                allow_headers=["Content-Type", "Prefer", "Idempotency-Key", "Accept"],
                expose_headers=["Location", "Link", "Preference-Applied", "Retry-After"],
            )

    def _route(self, path: str, endpoint: Endpoint, method: str) -> list[BaseRoute]:
        """The route with and without a trailing slash (as pygeoapi's own routes are)."""

        async def answer(request: Request) -> Response:
            try:
                return await endpoint(request, **request.path_params)
            except OGCError as e:
                return self.exception(e)
            except JobStoreUnavailable as e:  # answered, not hung: clients retry
                logger.warning("%s %s: %s", request.method, request.url.path, e)
                resp = self.exception(OGCError(503, UNAVAILABLE, str(e)))
                resp.headers["Retry-After"] = "2"
                return resp

        return [Route(p, answer, methods=[method]) for p in (path, path + "/")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if scope["type"] == "http":
            length = dict(scope.get("headers", [])).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                resp = self.error(413, "payload-too-large", f"request body over {self.max_body} B")
                await resp(scope, receive, send)
                return
        await self.entry(scope, receive, send)

    def published_folder(self, prefix: str, folder: Path) -> ASGIApp:
        """The files of a folder the server publishes at `prefix` (job outputs, the bundled
        sample, the shipped model): an OGC exception document when there is none; STAC
        documents with a `self` link and nothing local, as their HTML page with `?f=html`."""
        files = StaticFiles(directory=folder, check_dir=False)
        url = self.published[folder]

        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["path"].endswith(".json") and scope["method"] in ("GET", "HEAD"):
                request = Request(scope)
                rel = request.url.path.removeprefix(prefix + "/")
                answer = await self._document(request, folder, rel, f"{url}/{rel}")
                await answer(scope, receive, send)
                return
            try:
                await files(scope, receive, send)
            except HTTPException as e:  # StaticFiles raises for 404 / 405
                detail = f"{scope['path']}: {e.detail}"
                await self.error(e.status_code, "not-found", detail)(scope, receive, send)

        return serve

    async def _document(self, request: Request, folder: Path, rel: str, url: str) -> Response:
        """A JSON file of a published folder, local paths in its hrefs made URLs
        (`self.published`); as an HTML page with `?f=html`."""
        path = (folder / rel).resolve()
        try:
            path.relative_to(folder)
            doc = await run_in_threadpool(lambda: json.loads(path.read_bytes()))
        except (ValueError, OSError):
            return self.error(404, "not-found", f"{request.url.path}: Not Found")
        stac = isinstance(doc, dict) and "stac_version" in doc
        if stac:  # as on disk, with a `self` link and nothing local
            doc = absolutise(doc, url, self.published)
        if request.query_params.get("f") == "html" and stac:
            return HTMLResponse(browse.render_stac(doc, url, self.base_url))
        feature = isinstance(doc, dict) and doc.get("type") == "Feature"
        kind = "application/geo+json" if feature else "application/json"
        return self.json(doc, headers={"Content-Type": kind})

    async def outputs_catalog(self, request: Request) -> Response:
        """The root STAC catalog of every job's output catalog (also at /stac/outputs)."""
        found = await run_in_threadpool(browse.find_output_catalogs, self.manager.output_dir)
        doc = browse.root_catalog(self.manager.config.outputs_url, found)
        if request.query_params.get("f") == "html":
            return HTMLResponse(browse.render_stac(doc, doc["links"][0]["href"], self.base_url))
        return self.json(doc)

    async def stac_output(self, request: Request) -> Response:
        """`/stac/outputs/<path>`: the same file under `/outputs` (a folder: its catalog)."""
        path = request.path_params["path"].strip("/")
        target = (self.manager.output_dir / path).resolve()
        inside = target.is_relative_to(self.manager.output_dir)
        if inside and target.is_dir() and (target / browse.ROOT_CATALOG).is_file():
            path = f"{path}/{browse.ROOT_CATALOG}"
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{self.manager.config.outputs_url}/{path}{query}", 308)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Start this worker's job supervisor with the server, stop it (and its jobs) after."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await run_in_threadpool(self.manager.start)
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await run_in_threadpool(self.ensure_default_model)
                logger.info("worker %d: jobs in %s", os.getpid(), redact(self.manager.store.url))
                # the objects of the imports and the configuration never die: frozen out of
                # the collector's way, a full collection over them no longer stalls a request
                # burst
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await run_in_threadpool(self.manager.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def ensure_default_model(self) -> None:
        """On an empty registry, register the shipped model (`eurosat-classifier` v1,
        `champion`), in a process of its own: the web worker never imports torch or MLflow.
        Once done for a store, a marker in the data folder saves the next start the check."""
        if not self.manager.config.default_model:
            return
        data_dir = self.manager.config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        marker = data_dir / "default-model.json"
        # the workers of `serve --workers N` start together: one registers, the others then
        # find the marker (or the registered model) instead of registering a second version
        with (data_dir / "default-model.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with contextlib.suppress(OSError, ValueError):
                if json.loads(marker.read_text()).get("tracking_uri") == self.tracking_uri:
                    return
            cmd = [sys.executable, "-m", "app_package.training.default_model", self.tracking_uri]
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=DEFAULT_MODEL_TIMEOUT_S
            )
            if done.returncode != 0:  # the server still serves; classification needs a model
                logger.error("the default model was not registered: %s", done.stderr[-2000:])
                return
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if result["registered_version"]:
                logger.warning(
                    "registered the shipped default model as %s version %s",
                    MODEL_NAME,
                    result["registered_version"],
                )
            marker.write_text(json.dumps({"tracking_uri": self.tracking_uri, **result}))

    # ------------------------------------------------------------ helpers
    def exception(self, e: Any) -> Any:
        return JSONResponse(e.document(), status_code=e.status)

    def error(self, status: int, kind: str, detail: str) -> Any:
        return self.exception(OGCError(status, APP_EXCEPTIONS + kind, detail))

    def json(self, doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        return Response(
            orjson.dumps(doc, default=str),
            status_code=status,
            headers=headers,
            media_type="application/json",
        )

    def _job(self, job_id: str) -> dict[str, Any]:
        try:
            return self.manager.get_job(job_id)
        except JobNotFoundError as e:
            raise OGCError(404, NO_SUCH_JOB, f"no job with id {job_id!r}") from e

    def _process(self, pid: str) -> dict[str, Any]:
        if pid not in self.manager.processes:
            raise OGCError(
                404,
                NO_SUCH_PROCESS,
                f"no process {pid!r}; processes: {', '.join(self.manager.processes)}",
            )
        meta = self._descriptions.get(pid)
        if meta is None:  # the configured processes do not change while the server runs
            meta = dict(self.manager.get_processor(pid).metadata)
            meta["id"] = pid
            self._descriptions[pid] = meta
        return meta

    def _output_id(self, pid: str) -> str:
        """The id of a process's one output (`catalog` for a process no longer configured)."""
        try:
            outputs = self._process(pid).get("outputs") or {}
        except OGCError:
            return CATALOG_OUTPUT
        return str(next(iter(outputs), CATALOG_OUTPUT))

    # ------------------------------------------------------------ handlers
    async def health(self, request: Any) -> Any:
        """The API health check (`service.health`): store, MLflow, disk, job slots."""
        status, doc = await run_in_threadpool(self._health)
        return Response(
            orjson.dumps(doc),
            status_code=status,
            media_type=health.MEDIA_TYPE,
            headers={"Cache-Control": "no-cache"},
        )

    def _health(self) -> tuple[int, dict[str, Any]]:
        store, running = health.timed(
            "jobStore:responseTime",
            lambda: self.manager.query(JobQuery(statuses=RUNNING, limit=0))["numberMatched"],
        )
        checks = [
            store,
            health.mlflow_check(self.tracking_uri),
            health.disk_check(self.manager.output_dir, self.manager.config.min_free_disk),
            health.slots_check(
                running if isinstance(running, int) else None, self.manager.max_jobs
            ),
        ]
        return health.report(checks, __version__)

    async def describe(self, request: Any, pid: str) -> Any:
        self._process(pid)
        return Forward(self.app)  # known: pygeoapi describes it

    async def conformance(self, request: Any) -> Any:
        if request.query_params.get("f") == "html":
            return Forward(self.app)
        return self.json({"conformsTo": CONFORMANCE})

    async def execute(self, request: Any, pid: str) -> Any:
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
        req = await run_in_threadpool(validate_execute, description, doc, self.policy)
        prefs = parse_prefer(request.headers.getlist("prefer"))
        mode = choose_mode(description.get("jobControlOptions", []), prefs)
        wait_s = self._wait(prefs)
        key = request.headers.get("idempotency-key") or None  # a retry gets the same job
        if key is not None and not 1 <= len(key) <= 200:
            raise invalid("the Idempotency-Key header must be 1 to 200 characters")
        job = await run_in_threadpool(
            self.manager.submit_job,
            pid,
            req.inputs,
            req.subscriber,
            key,
            req.response,
            req.transmission,
        )
        job_id = job["identifier"]
        headers = {"Location": f"{self.base_url}/jobs/{job_id}"}
        if mode == "async":
            if "respond-async" in prefs:
                headers["Preference-Applied"] = "respond-async"
            return self.json(status_info(job, self.base_url), 201, headers)
        if "wait" in prefs and wait_s < self.manager.config.sync_wait_s:
            headers["Preference-Applied"] = f"wait={prefs['wait']}"
        deadline = time.monotonic() + wait_s
        while True:
            job = await run_in_threadpool(self.manager.get_job, job_id)
            if status_of(job) in TERMINAL:
                break
            if time.monotonic() >= deadline:  # too long for one request: the job goes on
                logger.info("job %s still running after %.0f s: answered as async", job_id, wait_s)
                return self.json(status_info(job, self.base_url), 201, headers)
            await asyncio.sleep(0.2)
        return await self._results(job, headers)

    def _wait(self, prefs: dict[str, str]) -> float:
        """How long a synchronous request may wait: `Prefer: wait=N`, at most the bound."""
        bound = self.manager.config.sync_wait_s
        if "wait" not in prefs:
            return bound
        wait = prefs["wait"]
        if not wait.isdigit():
            raise invalid(f"Prefer: wait={wait!r} must be a whole number of seconds")
        return min(float(wait), bound)

    async def _results(self, job: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        """A finished job's results as its execute request asked, or its exception."""
        if status_of(job) is not JobStatus.successful:
            return self._failed(job, headers)
        _, catalog = await run_in_threadpool(
            self.manager.get_job_result, job["identifier"], self.published
        )
        spec = job.get("spec") or {}
        answer = results_answer(
            catalog,
            self.manager.result_url(job),
            spec.get("response", "raw"),
            spec.get("transmission") or {},
            self._output_id(str(job.get("process_id", ""))),
        )
        all_headers = {**(headers or {}), **answer.headers}
        if answer.body is None:
            return Response(status_code=answer.status, headers=all_headers)
        return self.json(answer.body, answer.status, all_headers)

    def _failed(self, job: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        if status_of(job) is JobStatus.dismissed:
            e = OGCError(404, JOB_DISMISSED, f"job {job['identifier']} was dismissed")
        else:
            status = 400 if job.get("error_kind") == "input" else 500
            e = OGCError(status, JOB_FAILED, job.get("message") or "the job failed")
        resp = self.exception(e)
        resp.headers.update(headers or {})
        return resp

    async def jobs(self, request: Any) -> Any:
        if request.query_params.get("f") == "html":
            return Forward(self.app)
        params = {k: request.query_params.getlist(k) for k in request.query_params}
        query = parse_job_query(params)
        found = await run_in_threadpool(self.manager.query, query)
        return self.json(
            {
                "jobs": [status_info(j, self.base_url) for j in found["jobs"]],
                "links": paging_links(
                    f"{self.base_url}/jobs", params, query, found["numberMatched"]
                ),
                "numberMatched": found["numberMatched"],
            }
        )

    async def job(self, request: Any, job_id: str) -> Any:
        if request.query_params.get("f") == "html":
            return Forward(self.app)
        job = await run_in_threadpool(self._job, job_id)
        return self.json(status_info(job, self.base_url))

    async def dismiss(self, request: Any, job_id: str) -> Any:
        await run_in_threadpool(self._job, job_id)
        job = await run_in_threadpool(self.manager.dismiss, job_id)
        return self.json(status_info(job, self.base_url))

    async def results(self, request: Any, job_id: str) -> Any:
        job = await run_in_threadpool(self._job, job_id)
        if status_of(job) not in TERMINAL:
            raise OGCError(404, RESULT_NOT_READY, f"job {job_id} is {job['status']}: poll it")
        if request.query_params.get("f") == "html" and status_of(job) is JobStatus.successful:
            _, catalog = await run_in_threadpool(
                self.manager.get_job_result, job_id, self.published
            )
            url = self.manager.result_url(job)
            return HTMLResponse(browse.render_stac(catalog, url, self.base_url))
        return await self._results(job)
