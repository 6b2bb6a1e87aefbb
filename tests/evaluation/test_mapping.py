"""Mappings from reference values to map classes: forms, several classes, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app_package.errors import InputError, NotFoundError
from app_package.evaluation.mapping import (
    check_covers,
    identity_mapping,
    mapping_from_object,
    parse_mapping,
    read_mapping,
)


def test_inline_json_and_file_forms_agree(tmp_path: Path) -> None:
    inline = parse_mapping("forest=Forest, fields=AnnualCrop|permanentcrop|Pasture,311=River")
    assert inline.accepted == {"forest": (1,), "fields": (0, 6, 5), "311": (8,)}
    assert inline.names("fields") == ["AnnualCrop", "PermanentCrop", "Pasture"]
    doc = {"forest": "Forest", "fields": ["AnnualCrop", "PermanentCrop", "Pasture"], "311": "River"}
    assert mapping_from_object(doc) == inline
    assert parse_mapping(json.dumps(doc)) == inline
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(doc))
    assert read_mapping(str(path)) == inline
    assert read_mapping("forest=Forest").accepted == {"forest": (1,)}
    assert inline.as_json()["fields"] == ["AnnualCrop", "PermanentCrop", "Pasture"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("forest=Forrest", "'Forrest' is not a map class; classes are AnnualCrop, Forest"),
        ("forest", "mapping entry 'forest' is not value=Class"),
        ("forest=Forest,forest=River", "names 'forest' twice"),
        ("forest=", "mapping of 'forest' names no class"),
        ("{not json", "the mapping is not valid JSON"),
        ("{}", "the mapping must be a non-empty JSON object"),
        ('{"forest": 3}', "give a class name, names joined by '|' or a list of names"),
    ],
)
def test_bad_mappings_name_the_problem(text: str, needle: str) -> None:
    with pytest.raises(InputError) as e:
        parse_mapping(text)
    assert needle in str(e.value) and e.value.field == "mapping"


def test_a_missing_mapping_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"mapping file .*nope\.json cannot be read"):
        read_mapping(str(tmp_path / "nope.json"))


def test_identity_needs_class_names_and_lists_the_others() -> None:
    m = identity_mapping(["SeaLake", "Forest", "Forest"])
    assert m.identity and m.accepted == {"Forest": (1,), "SeaLake": (9,)}
    with pytest.raises(InputError) as e:
        identity_mapping(["Forest", "wood", "311"])
    assert "'311', 'wood' are not EuroSAT class names" in str(e.value)


def test_values_without_a_mapping_are_listed() -> None:
    m = parse_mapping("forest=Forest")
    check_covers(m, ["forest"])
    with pytest.raises(InputError) as e:
        check_covers(m, ["forest", "water", "urban"])
    assert "reference values 'urban', 'water' have no mapping" in str(e.value)
