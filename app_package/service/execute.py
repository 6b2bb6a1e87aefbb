"""An execute request checked against its process description before any job exists: inputs,
their cardinality and schemas, references (`app_package.service.hrefs`) and the subscriber."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app_package.service.hrefs import HrefPolicy
from app_package.service.ogc import invalid


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
