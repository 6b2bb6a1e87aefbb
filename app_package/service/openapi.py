"""The OpenAPI document pygeoapi generates, made self-contained (no remote `$ref`s) and true to
what the job endpoints answer."""

from __future__ import annotations

from typing import Any

from pygeoapi.util import JobStatus

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


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
        "style": "form",
        "explode": False,
    }


# the job-list class's parameters (18-062r2 §11), and `offset` for paging
JOB_LIST_PARAMETERS = [
    _query(
        "type", {"type": "array", "items": {"type": "string", "enum": ["process"]}}, "job types"
    ),
    _query("processID", {"type": "array", "items": {"type": "string"}}, "process ids"),
    _query(
        "status",
        {
            "type": "array",
            "items": {
                "type": "string",
                "enum": [s.value for s in JobStatus],
            },
        },
        "job statuses",
    ),
    _query(
        "datetime",
        {"type": "string"},
        "creation time: an RFC 3339 instant or an interval start/end ('..' open)",
    ),
    _query("minDuration", {"type": "integer", "minimum": 0}, "seconds run at least"),
    _query("maxDuration", {"type": "integer", "minimum": 0}, "seconds run at most"),
    _query(
        "limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "jobs per page"
    ),
    _query("offset", {"type": "integer", "minimum": 0, "default": 0}, "jobs to skip"),
]


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
            ops["get"]["parameters"] = JOB_LIST_PARAMETERS
            ops["get"]["responses"]["400"] = exc
    return oas
