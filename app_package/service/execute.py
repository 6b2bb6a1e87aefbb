"""An execute request checked against its process description before any job exists: inputs,
their cardinality and schemas, references (`app_package.service.hrefs`) and the subscriber."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app_package.eo.bbox import from_ogc_bbox
from app_package.errors import InputError
from app_package.service.hrefs import HrefPolicy
from app_package.service.ogc import invalid


@dataclass(frozen=True)
class ExecuteRequest:
    """An execute request as checked: plain input values, the subscriber's URLs, and how the
    results are to be answered (18-062r2 §7.11: `response` raw or document; each output's
    `transmissionMode` value or reference)."""

    inputs: dict[str, Any]
    subscriber: dict[str, str] | None = None
    response: str = "raw"
    transmission: dict[str, str] = field(default_factory=dict)  # output id -> value | reference


def validate_execute(
    description: Mapping[str, Any], body: Any, policy: HrefPolicy
) -> ExecuteRequest:
    """Check an execute request against a process description before any job exists.

    Inline values, qualified values (`{"value": …}`) and references (`{"href": …}`) are
    accepted; references and inputs declared with `"format": "uri-reference"` must pass
    `policy`; requested outputs must be the process's, in a transmission mode it offers. Raises
    a 400 `OGCError` naming the input.
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
    return ExecuteRequest(values, urls, response, _transmission(description, body))


def _transmission(description: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, str]:
    """The transmission mode of each requested output (default: value)."""
    outputs = body.get("outputs")
    if outputs is None:
        return {}
    if not isinstance(outputs, dict):
        raise invalid("'outputs' must be a JSON object mapping output ids to their options")
    declared = description.get("outputs", {})
    offered = description.get("outputTransmission", ["value"])
    modes: dict[str, str] = {}
    for name, options in outputs.items():
        if name not in declared:
            raise invalid(
                f"unknown output {name!r} for process '{description.get('id')}'; outputs: "
                f"{', '.join(sorted(declared))}"
            )
        if not isinstance(options, dict):
            raise invalid(f"output {name!r}: options must be a JSON object")
        mode = options.get("transmissionMode", "value")
        if mode not in offered:
            raise invalid(
                f"output {name!r}: transmissionMode {mode!r} is not offered; use one of "
                f"{', '.join(offered)}"
            )
        modes[name] = str(mode)
    return modes


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
    if schema.get("format") == "ogc-bbox":  # order and CRS: what a JSON schema cannot say
        try:
            from_ogc_bbox(value, name)
        except InputError as e:
            raise invalid(str(e)) from None
    return value
