"""The one STAC I/O layer: reading documents from paths and http(s) URLs, resolving hrefs
against the document they appear in, walking catalogs to their items, and making hrefs absolute.

Every reader of STAC in the package (products, training data, models, merging) goes through
these functions, so paths, `file://` URLs, http(s) URLs and GDAL `/vsi…` paths behave the same
everywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from app_package.errors import DataError, NotFoundError

HTTP_TIMEOUT_S = 60.0
CATALOG_FILE = "catalog.json"
COLLECTION_FILE = "collection.json"


def is_url(ref: str) -> bool:
    """Whether `ref` is an http(s) URL."""
    return urlparse(ref).scheme in ("http", "https")


def resolve_href(href: str, base: str) -> str:
    """`href` resolved against the document `base` (a path or URL) it appeared in.

    URLs and GDAL `/vsi…` paths are kept as they are; `file://` URLs become paths; relative
    hrefs resolve against the base's folder (an absolute path for a local base)."""
    if is_url(href) or href.startswith("/vsi"):
        return href
    if href.startswith("file://"):
        return urlparse(href).path
    if is_url(base):
        return urljoin(base, href)
    if os.path.isabs(href):
        return os.path.normpath(href)
    return os.path.abspath(os.path.join(os.path.dirname(base), href))


def read_bytes(ref: str, timeout_s: float = HTTP_TIMEOUT_S) -> bytes:
    """The bytes of a local file or an http(s) URL; NotFoundError names what is missing."""
    if is_url(ref):
        import requests

        try:
            r = requests.get(ref, timeout=timeout_s)
        except requests.RequestException as e:
            raise NotFoundError(
                f"cannot reach {ref}: {e} — check the URL and that the server is running"
            ) from e
        if r.status_code != 200:
            raise NotFoundError(f"{ref} answered HTTP {r.status_code}: check the URL")
        return r.content
    path = Path(urlparse(ref).path if ref.startswith("file://") else ref)
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise NotFoundError(f"STAC document {ref} not found (no such file)") from e
    except OSError as e:
        raise DataError(f"cannot read STAC document {ref}: {e}") from e


def read_json(ref: str) -> dict[str, Any]:
    """A STAC document (a JSON object) from a path or URL."""
    try:
        doc = json.loads(read_bytes(ref))
    except json.JSONDecodeError as e:
        raise DataError(f"{ref} is not valid JSON ({e}): point at a STAC document") from e
    if not isinstance(doc, dict):
        raise DataError(f"{ref} is not a STAC object (a JSON object was expected)")
    return doc


def link_href(doc: dict[str, Any], rel: str) -> str | None:
    """The href of the document's first link with relation `rel`."""
    for link in doc.get("links", []):
        if link.get("rel") == rel and link.get("href"):
            return str(link["href"])
    return None


def walk(
    ref: str, *, follow: Callable[[str], str | None] | None = None
) -> Iterator[tuple[dict[str, Any], str]]:
    """Every STAC document (catalog, collection, item) reachable from `ref` through `child` and
    `item` links, with its href; each is read once, however often it is linked.

    `follow` maps each linked href to the one to read instead, or to None to leave it out (e.g.
    only local files, or the copy of a folder rather than the original)."""
    todo = [ref]
    seen: set[str] = set()
    while todo:
        href = todo.pop()
        if href in seen:
            continue
        seen.add(href)
        doc = read_json(href)
        yield doc, href
        if doc.get("type") == "Feature":
            continue
        links = [lk for lk in doc.get("links", []) if lk.get("rel") in ("child", "item")]
        for link in reversed(links):  # depth first, in the catalog's own order
            if not link.get("href"):
                continue
            resolved = resolve_href(str(link["href"]), href)
            target = follow(resolved) if follow is not None else resolved
            if target is not None:
                todo.append(target)


def items(ref: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every item reachable from `ref` (itself, if it is an item), with its href."""
    for doc, href in walk(ref):
        if doc.get("type") == "Feature":
            yield doc, href


def find_catalog_file(ref: Path | str) -> Path:
    """The STAC file of `ref`: the file itself, or the `catalog.json` (else `collection.json`)
    of folder `ref` (a staged-in folder, a job's output folder)."""
    ref = Path(ref)
    if ref.is_file():
        return ref
    if not ref.is_dir():
        raise NotFoundError(
            f"catalog {ref} does not exist: pass a folder holding {CATALOG_FILE}, or the STAC "
            "file itself"
        )
    for name in (CATALOG_FILE, COLLECTION_FILE):
        if (ref / name).is_file():
            return ref / name
    present = ", ".join(sorted(p.name for p in ref.iterdir())[:10]) or "nothing"
    raise NotFoundError(
        f"folder {ref} holds no {CATALOG_FILE} (found: {present}); pass a folder holding a "
        f"static STAC catalog ({CATALOG_FILE} or {COLLECTION_FILE}), or the STAC file itself"
    )


def absolutise(
    doc: dict[str, Any], url: str, published: dict[Path, str] | None = None
) -> dict[str, Any]:
    """A STAC document with its link and asset hrefs resolved against `url`; adds `self`.

    `published` maps local folders to the URLs they are served at: an absolute path (or
    `file://` URL) inside one of them becomes that URL, so a document served over HTTP links
    nothing on the server's disk."""
    out = json.loads(json.dumps(doc))
    links = [lk for lk in out.get("links", []) if lk.get("rel") != "self"]
    for link in links:
        link["href"] = urljoin(url, publish(link["href"], published or {}))
    kind = "application/geo+json" if out.get("type") == "Feature" else "application/json"
    out["links"] = [{"rel": "self", "href": url, "type": kind}, *links]
    for asset in out.get("assets", {}).values():
        asset["href"] = urljoin(url, publish(asset["href"], published or {}))
    return out


def publish(href: str, published: dict[Path, str]) -> str:
    """`href` as a URL when it is a local path inside a folder of `published`, else as it is."""
    if href.startswith("file://"):
        path = urlparse(href).path
    elif os.path.isabs(href):
        path = href
    else:
        return href
    path = os.path.normpath(path)
    for folder, url in published.items():
        rel = os.path.relpath(path, folder)
        if rel != ".." and not rel.startswith("../"):
            return f"{url.rstrip('/')}/{Path(rel).as_posix()}"
    return href
