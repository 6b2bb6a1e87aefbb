"""How the values of a reference attribute map to the map's classes (pure: text in, record out).

A mapping names, for each reference value, the map classes that count as agreeing with it:
`forest=Forest` (one class) or `fields=AnnualCrop|PermanentCrop|Pasture` (any of several).
Written inline as `value=Class|Class,value2=Class`, or as a JSON object
`{"value": "Class", "value2": ["Class", "Class"]}` (a string may also use `|`). Reference values
are compared as text (an integer code 311 is `"311"`); class names are EuroSAT class names
(case does not matter). Without a mapping, the reference values must be EuroSAT class names
themselves, each accepting only its own class.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app_package.eo.bands import EUROSAT_CLASS_NAMES, EUROSAT_CLASSES
from app_package.errors import InputError, NotFoundError

ALTERNATIVES = "|"  # separates the acceptable classes of one reference value
PAIRS = ","  # separates value=classes pairs in the inline form
_BY_NAME = {c.name.lower(): c.value for c in EUROSAT_CLASSES}


@dataclass(frozen=True)
class ClassMapping:
    """Reference value -> the map class values accepted for it, in the order given."""

    accepted: dict[str, tuple[int, ...]]
    identity: bool = False  # the default: values are class names accepting only themselves

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(self.accepted)

    def names(self, value: str) -> list[str]:
        """The names of the classes accepted for a reference value."""
        return [EUROSAT_CLASSES[v].name for v in self.accepted[value]]

    def as_json(self) -> dict[str, list[str]]:
        return {value: self.names(value) for value in self.accepted}


def class_value(name: str, reference_value: str) -> int:
    """The map value of a EuroSAT class name (any case); InputError naming the valid ones."""
    value = _BY_NAME.get(name.strip().lower())
    if value is None:
        raise InputError(
            f"mapping of {reference_value!r}: {name.strip()!r} is not a map class; classes are "
            f"{', '.join(EUROSAT_CLASS_NAMES)}",
            field="mapping",
        )
    return value


def _targets(reference_value: str, spec: Any) -> tuple[int, ...]:
    if isinstance(spec, str):
        names = spec.split(ALTERNATIVES)
    elif isinstance(spec, list) and all(isinstance(n, str) for n in spec):
        names = spec
    else:
        raise InputError(
            f"mapping of {reference_value!r}: give a class name, names joined by "
            f"{ALTERNATIVES!r} or a list of names, not {spec!r}",
            field="mapping",
        )
    if not [n for n in names if n.strip()]:
        raise InputError(f"mapping of {reference_value!r} names no class", field="mapping")
    values = [class_value(n, reference_value) for n in names if n.strip()]
    return tuple(dict.fromkeys(values))  # in the order given, once each


def mapping_from_object(doc: Any) -> ClassMapping:
    """A mapping from a JSON object `{reference value: class name(s)}`."""
    if not isinstance(doc, Mapping) or not doc:
        raise InputError(
            "the mapping must be a non-empty JSON object {reference value: class name, or names "
            f"joined by {ALTERNATIVES!r}, or a list of names}}",
            field="mapping",
        )
    return ClassMapping({str(k).strip(): _targets(str(k), v) for k, v in doc.items()})


def parse_mapping(text: str) -> ClassMapping:
    """A mapping from its inline form `value=Class|Class,value2=Class`, or from JSON text."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError as e:
            raise InputError(f"the mapping is not valid JSON: {e}", field="mapping") from e
        return mapping_from_object(doc)
    pairs: dict[str, str] = {}
    for pair in stripped.split(PAIRS):
        if not pair.strip():
            continue
        key, sep, classes = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(
                f"mapping entry {pair.strip()!r} is not value=Class (several classes: "
                f"value=Class{ALTERNATIVES}Class; values holding {PAIRS!r} or '=': use a JSON "
                "file)",
                field="mapping",
            )
        if key.strip() in pairs:
            raise InputError(f"the mapping names {key.strip()!r} twice", field="mapping")
        pairs[key.strip()] = classes
    return mapping_from_object(pairs)


def read_mapping(arg: str) -> ClassMapping:
    """A mapping given as a JSON file's path, or inline (`parse_mapping`)."""
    path = Path(arg)
    if arg.lower().endswith(".json") or path.is_file():
        try:
            text = path.read_text()
        except OSError as e:
            raise NotFoundError(
                f"mapping file {arg} cannot be read ({e.strerror}): give a JSON file's path or "
                f"the mapping inline as value=Class{ALTERNATIVES}Class,value2=Class",
                field="mapping",
            ) from e
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise InputError(f"mapping file {arg} is not valid JSON: {e}", field="mapping") from e
        return mapping_from_object(doc)
    return parse_mapping(arg)


def identity_mapping(values: Iterable[str]) -> ClassMapping:
    """The default mapping: each reference value is a EuroSAT class name accepting only itself.
    InputError listing the values that are not class names."""
    present = sorted(set(values))
    unknown = [v for v in present if v.strip().lower() not in _BY_NAME]
    if unknown:
        raise InputError(
            f"reference values {', '.join(map(repr, unknown))} are not EuroSAT class names: give "
            "a mapping from each reference value to the class name(s) it accepts, e.g. "
            f"{unknown[0]}=<class name> (classes: {', '.join(EUROSAT_CLASS_NAMES)})",
            field="mapping",
        )
    ordered = sorted(present, key=lambda v: _BY_NAME[v.strip().lower()])
    return ClassMapping({v: (_BY_NAME[v.strip().lower()],) for v in ordered}, identity=True)


def check_covers(mapping: ClassMapping, values: Iterable[str]) -> None:
    """InputError listing the reference values that the mapping does not map."""
    missing = sorted(set(values) - set(mapping.accepted))
    if missing:
        raise InputError(
            f"reference values {', '.join(map(repr, missing))} have no mapping: add them to the "
            f"mapping (mapped values: {', '.join(map(repr, mapping.values))})",
            field="mapping",
        )
