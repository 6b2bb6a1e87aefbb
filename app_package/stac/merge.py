"""Merging STAC catalogs: one parent catalog that links several child catalogs.

The CWL classification package scatters `classify` over a list of products (one catalog each);
this is the step after the scatter that gathers them, so the package stages out ONE catalog:

    DEST/catalog.json                 parent catalog (one `child` link per product)
    DEST/<child-id>/catalog.json      each child catalog, copied with its items and assets

Children are copied (CWL inputs are read-only) and their folder is named after the child catalog's
id (`-2`, `-3`… on a clash). Only links are rewritten (the parent becomes every child's and every
item's `root`); the JSON is otherwise copied as it is: no STAC version or extension migration,
which reading and saving through pystac would do.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pystac

from app_package.errors import DataError, InputError
from app_package.stac.io import CATALOG_FILE, find_catalog_file, is_url, read_json, walk
from app_package.util.outputs import atomic_dir

logger = logging.getLogger(__name__)


def _child_name(catalog_id: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", catalog_id).strip(".-") or "catalog"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def _read_catalog(path: Path) -> dict[str, Any]:
    doc = read_json(str(path))
    if "links" not in doc:
        raise DataError(f"{path} is not a STAC object (no links): pass a STAC catalog.json")
    return doc


def _local_target(base: Path, href: str) -> Path | None:
    """The local file a link points at, or None for a URL."""
    if "://" in href and not href.startswith("file://"):
        return None
    return (base / href.removeprefix("file://")).resolve()


def _relative(target: Path, start: Path) -> str:
    rel = os.path.relpath(target, start)
    return rel if rel.startswith("..") else f"./{rel}"


def relink_child(
    child_root: Path, parent_file: Path, src: Path
) -> list[tuple[Path, dict[str, Any]]]:
    """Rewrite the copied child catalog at `child_root` so `parent_file` is its root and parent.

    Every STAC file reachable through child/item links gets `root` pointing at the parent; the
    child's own `parent` too. `self` links are dropped (the catalog is self-contained) and
    hrefs that pointed into the source folder `src` are made relative to the copy. Returns the
    rewritten documents (path, JSON) without writing them; the JSON is otherwise unchanged (no
    STAC version or extension migration).
    """
    copy_dir = child_root.parent.resolve()
    root = child_root.resolve()

    def into_copy(target: Path) -> Path:
        return copy_dir / target.relative_to(src) if target.is_relative_to(src) else target

    def follow(href: str) -> str | None:  # local files only, in the copy
        return None if is_url(href) else str(into_copy(Path(href).resolve()))

    out: list[tuple[Path, dict[str, Any]]] = []
    for doc, href in walk(str(root), follow=follow):
        path = Path(href)
        if "links" not in doc:
            raise DataError(f"{path} is not a STAC object (no links): pass a STAC catalog.json")
        links: list[dict[str, Any]] = []
        for link in doc["links"]:
            rel = link.get("rel")
            if rel in ("root", "self") or (rel == "parent" and path == root):
                continue
            target = _local_target(path.parent, str(link["href"]))
            if target is not None:
                link = {**link, "href": _relative(into_copy(target), path.parent)}
            links.append(link)
        links.insert(
            0,
            {
                "rel": "root",
                "href": _relative(parent_file, path.parent),
                "type": "application/json",
            },
        )
        if path == root:
            links.insert(
                1,
                {
                    "rel": "parent",
                    "href": _relative(parent_file, path.parent),
                    "type": "application/json",
                },
            )
        for asset in doc.get("assets", {}).values():
            target = _local_target(path.parent, str(asset["href"]))
            if target is not None:
                asset["href"] = _relative(into_copy(target), path.parent)
        out.append((path, {**doc, "links": links}))
    return out


def build_parent(
    children: Sequence[tuple[str, dict[str, Any]]],
    *,
    catalog_id: str,
    description: str,
    title: str | None = None,
) -> dict[str, Any]:
    """The parent catalog JSON linking `children` (relative href, child JSON); pure."""
    links: list[dict[str, Any]] = [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"}
    ]
    for href, child in children:
        link = {"rel": "child", "href": href, "type": "application/json"}
        if child.get("title") or child.get("id"):
            link["title"] = str(child.get("title") or child["id"])
        links.append(link)
    parent: dict[str, Any] = {
        "type": "Catalog",
        "id": catalog_id,
        "stac_version": pystac.get_stac_version(),
        "description": description,
        "links": links,
    }
    if title:
        parent["title"] = title
    return parent


def merge_catalogs(
    sources: Sequence[Path],
    dest: Path,
    *,
    catalog_id: str = "merged",
    description: str = "Catalogs merged by app-package stac-merge",
    title: str | None = None,
) -> Path:
    """Copy each source catalog under `dest` and link them from a new parent catalog.

    `sources` are folders holding a `catalog.json` (or the JSON files themselves). `dest` must not
    exist or be empty; it is written atomically. Returns the parent's `catalog.json` path.
    """
    if not sources:
        raise InputError("no catalogs to merge: pass at least one catalog folder")
    if not catalog_id.strip():
        raise InputError("parent catalog id is empty: give it an id", field="catalog_id")
    files = [find_catalog_file(Path(s)) for s in sources]
    docs = [_read_catalog(f) for f in files]
    for f, doc in zip(files, docs, strict=True):
        if doc.get("type") not in ("Catalog", "Collection"):
            raise DataError(
                f"{f} is a STAC {doc.get('type', 'object')}, not a catalog or collection: "
                "pass the folder holding the catalog.json"
            )
    with atomic_dir(Path(dest)) as tmp:
        parent_file = tmp / CATALOG_FILE
        taken: set[str] = set()
        children: list[tuple[str, dict[str, Any]]] = []
        for f, doc in zip(files, docs, strict=True):
            name = _child_name(str(doc.get("id", "catalog")), taken)
            shutil.copytree(f.parent, tmp / name)
            for path, new in relink_child(tmp / name / f.name, parent_file, f.parent.resolve()):
                path.write_text(json.dumps(new, indent=2))
            children.append((f"./{name}/{f.name}", doc))
            logger.info("merged %s as %s/", f, name)
        parent = build_parent(children, catalog_id=catalog_id, description=description, title=title)
        parent_file.write_text(json.dumps(parent, indent=2))
    return Path(dest) / CATALOG_FILE
