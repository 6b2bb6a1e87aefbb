"""OGC API – Processes (18-062r2) details that stock pygeoapi gets wrong or leaves out.

Exception documents with the standard's `type` URIs, RFC 7240 `Prefer` parsing, validation of an
execute request against a process description, and the policy deciding which references (`href`
inputs, subscriber callbacks) a job may touch.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
NO_SUCH_PROCESS = EXCEPTIONS + "no-such-process"
NO_SUCH_JOB = EXCEPTIONS + "no-such-job"
RESULT_NOT_READY = EXCEPTIONS + "result-not-ready"
# Part 1 names no type for a bad execute request; this follows the same pattern (HTTP 400).
INVALID_INPUT = EXCEPTIONS + "invalid-input"
PAYLOAD_TOO_LARGE = EXCEPTIONS + "payload-too-large"
JOB_FAILED = EXCEPTIONS + "job-failed"
JOB_DISMISSED = EXCEPTIONS + "job-dismissed"

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
CONFORMANCE = [
    CONF + "core",
    CONF + "ogc-process-description",
    CONF + "json",
    CONF + "job-list",
    CONF + "dismiss",
    CONF + "callback",
    CONF + "oas30",
]


class OGCError(Exception):
    """An error answered as an OGC exception document (RFC 7807 style, per 18-062r2 §7.5)."""

    def __init__(self, status: int, type_: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.detail = detail

    def document(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }


def invalid(detail: str) -> OGCError:
    """A 400 for a bad execute request."""
    return OGCError(400, INVALID_INPUT, detail)


# ---------------------------------------------------------------- Prefer (RFC 7240)
def parse_prefer(values: Iterable[str]) -> dict[str, str]:
    """Preferences from one or more `Prefer` header values: {name (lower case): value or ''}.

    Follows RFC 7240 §2: comma-separated preferences, each `token [= value] *(; parameter)`;
    values may be quoted; the first occurrence of a preference wins; parameters are ignored.
    """
    prefs: dict[str, str] = {}
    for header in values:
        for item in _split_outside_quotes(header, ","):
            head = _split_outside_quotes(item, ";")[0].strip()
            if not head:
                continue
            name, _, value = head.partition("=")
            name = name.strip().lower()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            prefs.setdefault(name, value)
    return prefs


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def choose_mode(job_control: Sequence[str], prefs: Mapping[str, str]) -> str:
    """'async' or 'sync' from a process's jobControlOptions and the client's preferences."""
    can_async = "async-execute" in job_control
    can_sync = "sync-execute" in job_control
    if "respond-async" in prefs and can_async:
        return "async"
    if can_sync:
        return "sync"
    return "async"


# ---------------------------------------------------------------- references
@dataclass(frozen=True)
class HrefPolicy:
    """Which references a job may read: schemes, local folders and network ranges."""

    data_roots: tuple[Path, ...] = ()
    schemes: frozenset[str] = frozenset({"file", "http", "https", "models", "runs"})
    allow_private: bool = False
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_config(cls, conf: Mapping[str, Any]) -> HrefPolicy:
        roots = conf.get("data_roots") or []
        if isinstance(roots, str):
            roots = [r for r in roots.split(os.pathsep) if r]
        schemes = conf.get("href_schemes") or ["file", "http", "https", "models", "runs"]
        if isinstance(schemes, str):
            schemes = [s.strip() for s in schemes.split(",") if s.strip()]
        hosts = conf.get("allowed_hosts") or []
        if isinstance(hosts, str):
            hosts = [h.strip() for h in hosts.split(",") if h.strip()]
        return cls(
            data_roots=tuple(Path(os.path.realpath(r)) for r in roots),
            schemes=frozenset(s.lower() for s in schemes),
            allow_private=bool(conf.get("allow_private_hosts", False)),
            allowed_hosts=frozenset(h.lower() for h in hosts),
        )

    def check(self, name: str, ref: str) -> str:
        """Return `ref` if a job may read it, else raise a 400 naming the input and the rule."""
        if "\x00" in ref:
            raise invalid(f"input '{name}': reference contains a NUL byte")
        parts = urlsplit(ref)
        scheme = parts.scheme.lower()
        if len(scheme) <= 1:  # a plain path (a one-letter "scheme" is a Windows drive)
            return self._check_path(name, ref, ref)
        if scheme not in self.schemes:
            raise invalid(
                f"input '{name}': scheme '{scheme}:' is not allowed in {ref!r}; "
                f"allowed schemes: {', '.join(sorted(self.schemes))}"
            )
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise invalid(f"input '{name}': file URL {ref!r} names a remote host")
            self._check_path(name, unquote(parts.path), ref)
            return ref
        if scheme in ("http", "https"):
            self.check_url(name, ref)
        return ref

    def _check_path(self, name: str, path: str, ref: str) -> str:
        real = Path(os.path.realpath(path))
        for root in self.data_roots:
            if real == root or real.is_relative_to(root):
                return ref
        roots = ", ".join(str(r) for r in self.data_roots) or "(none configured)"
        raise invalid(
            f"input '{name}': {ref!r} is outside the allowed data folders ({roots}); put the "
            "data under one of them or add its folder to APP_PACKAGE_DATA_ROOTS"
        )

    def check_url(self, name: str, url: str) -> str:
        """An http(s) URL whose host does not resolve to a private range (unless allowed)."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise invalid(f"{name}: {url!r} must be an http or https URL")
        host = (parts.hostname or "").lower()
        if not host:
            raise invalid(f"{name}: URL {url!r} has no host")
        if self.allow_private or host in self.allowed_hosts:
            return url
        try:
            infos = socket.getaddrinfo(host, parts.port or 80, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as e:
            raise invalid(f"{name}: host {host!r} of {url!r} does not resolve ({e})") from e
        for info in infos:
            addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if not addr.is_global or addr.is_multicast:
                raise invalid(
                    f"{name}: {url!r} resolves to the non-public address {addr}; requests to "
                    "private, loopback and link-local ranges are refused (set "
                    "APP_PACKAGE_ALLOW_PRIVATE_HOSTS=true or APP_PACKAGE_ALLOWED_HOSTS to allow)"
                )
        return url


# ---------------------------------------------------------------- execute requests
def validate_execute(
    description: Mapping[str, Any], body: Any, policy: HrefPolicy
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """Check an execute request against a process description before any job exists.

    Returns (inputs as plain values, subscriber URLs or None). Inline values, qualified values
    (`{"value": …}`) and references (`{"href": …}`) are accepted; references and inputs declared
    with `"format": "uri-reference"` must pass `policy`. Raises a 400 `OGCError` naming the input.
    """
    from jsonschema import Draft202012Validator

    if not isinstance(body, dict):
        raise invalid("the execute request must be a JSON object with an 'inputs' member")
    raw_inputs = body.get("inputs", {})
    if raw_inputs is None:
        raw_inputs = {}
    if not isinstance(raw_inputs, dict):
        raise invalid("'inputs' must be a JSON object mapping input ids to values")
    declared: Mapping[str, Any] = description.get("inputs", {})
    unknown = sorted(set(raw_inputs) - set(declared))
    if unknown:
        raise invalid(
            f"unknown input(s) {', '.join(map(repr, unknown))} for process "
            f"'{description.get('id')}'; known inputs: {', '.join(sorted(declared))}"
        )
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        min_occurs = int(spec.get("minOccurs", 1))
        max_occurs = spec.get("maxOccurs", 1)
        if name not in raw_inputs:
            if min_occurs > 0:
                raise invalid(f"missing required input '{name}' ({spec.get('title', name)})")
            continue
        schema = spec.get("schema", {})
        given = raw_inputs[name]
        many = isinstance(given, list) and (max_occurs == "unbounded" or int(max_occurs) > 1)
        occurrences = given if many else [given]
        if len(occurrences) < min_occurs:
            raise invalid(f"input '{name}' needs at least {min_occurs} value(s)")
        if max_occurs != "unbounded" and len(occurrences) > int(max_occurs):
            raise invalid(f"input '{name}' takes at most {max_occurs} value(s)")
        plain = [_one_value(name, v, schema, policy, Draft202012Validator) for v in occurrences]
        values[name] = plain if many else plain[0]
    subscriber = body.get("subscriber")
    urls: dict[str, str] | None = None
    if subscriber is not None:
        if not isinstance(subscriber, dict) or "successUri" not in subscriber:
            raise invalid("'subscriber' must be an object with at least 'successUri'")
        urls = {}
        for key in ("successUri", "inProgressUri", "failedUri"):
            if key in subscriber:
                url = subscriber[key]
                if not isinstance(url, str):
                    raise invalid(f"subscriber '{key}' must be a URL string")
                urls[key] = policy.check_url(f"subscriber '{key}'", url)
    response = body.get("response", "raw")
    if response not in ("raw", "document"):
        raise invalid(f"'response' must be 'raw' or 'document', not {response!r}")
    return values, urls


def _one_value(name: str, given: Any, schema: Mapping[str, Any], policy: HrefPolicy, V: Any) -> Any:
    object_schema = schema.get("type") == "object"
    if isinstance(given, dict) and not object_schema and "href" in given:
        href = given["href"]
        if not isinstance(href, str) or not href:
            raise invalid(f"input '{name}': 'href' must be a non-empty string")
        if schema.get("type") != "string":
            raise invalid(f"input '{name}' does not accept references: give its value inline")
        value: Any = policy.check(name, href)
    elif isinstance(given, dict) and not object_schema and "value" in given:
        value = given["value"]
    else:
        value = given
    errors = sorted(V(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        raise invalid(f"input '{name}': {errors[0].message}")
    if schema.get("format") == "uri-reference" and isinstance(value, str):
        policy.check(name, value)
    return value
