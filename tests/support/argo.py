"""Reading the Argo manifests of deploy/argo in tests."""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import REPO

ARGO = REPO / "deploy" / "argo"


def docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(ARGO.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def dig(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc
