"""Browsing job outputs: the root STAC catalog of every job's output catalog, and STAC documents
rendered as HTML pages for a person (`?f=html`). Pure: documents in, documents or HTML out; the
service reads the files.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

STAC_VERSION = "1.1.0"
ROOT_CATALOG = "catalog.json"
ROOT_ID = "app-package-outputs"
JSON_TYPE = "application/json"
GEOJSON_TYPE = "application/geo+json"
HTML_TYPE = "text/html"
STAC_LINK_RELS = ("root", "parent", "child", "item", "collection", "self")


@dataclass(frozen=True)
class OutputCatalog:
    """One job's output catalog, as the root catalog lists it."""

    job_id: str
    title: str
    modified: float


def find_output_catalogs(output_dir: Path) -> list[OutputCatalog]:
    """Every `<output_dir>/<job>/catalog.json`, newest first, titled from the catalog itself."""
    found = []
    try:
        folders = list(output_dir.iterdir())
    except OSError:  # no job has written yet
        return []
    for folder in folders:
        path = folder / ROOT_CATALOG
        try:
            doc = json.loads(path.read_text())
            modified = path.stat().st_mtime
        except (OSError, ValueError):  # not a job folder, or one being written
            continue
        title = str(doc.get("title") or doc.get("id") or folder.name)
        found.append(OutputCatalog(folder.name, title, modified))
    return sorted(found, key=lambda c: (-c.modified, c.job_id))


def root_catalog(outputs_url: str, catalogs: Iterable[OutputCatalog]) -> dict[str, Any]:
    """The STAC catalog of all job outputs: one titled `child` link per job's catalog."""
    base = outputs_url.rstrip("/")
    self_href = f"{base}/{ROOT_CATALOG}"
    links: list[dict[str, Any]] = [
        {"rel": "self", "href": self_href, "type": JSON_TYPE, "title": "Job outputs"},
        {"rel": "root", "href": self_href, "type": JSON_TYPE, "title": "Job outputs"},
    ]
    links += [
        {
            "rel": "child",
            "href": f"{base}/{c.job_id}/{ROOT_CATALOG}",
            "type": JSON_TYPE,
            "title": f"{c.title} (job {c.job_id})",
        }
        for c in catalogs
    ]
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": ROOT_ID,
        "title": "Job outputs",
        "description": (
            "The output STAC catalogs of this server's finished jobs: trained models (STAC "
            "MLM items), land-cover class maps and water masks, newest first."
        ),
        "links": links,
    }


# ---------------------------------------------------------------- HTML
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page_href(href: str, base_url: str) -> str:
    """Where a person follows a link: JSON documents on this server open as their HTML page."""
    if href.startswith(base_url) and urlsplit(href).path.endswith(".json") and "?" not in href:
        return href + "?f=html"
    return href


def _value(v: Any) -> str:
    if isinstance(v, (dict, list)):
        text = json.dumps(v, ensure_ascii=False)
        if len(text) > 300:
            text = text[:300] + " …"
        return f"<code>{_e(text)}</code>"
    return _e(v)


def _thumbnail(doc: dict[str, Any], url: str) -> str | None:
    for asset in doc.get("assets", {}).values():
        if "thumbnail" in (asset.get("roles") or []):
            return urljoin(url, asset["href"])
    return None


def render_stac(doc: dict[str, Any], url: str, base_url: str) -> str:
    """An HTML page of a STAC catalog, collection or item found at `url`: what it is, its
    thumbnail, children and items, assets, properties and links (hrefs resolved against
    `url`; documents on this server link to their own page)."""
    kind = doc.get("type", "STAC document")
    title = doc.get("title") or doc.get("properties", {}).get("title") or doc.get("id", "")
    description = doc.get("description") or doc.get("properties", {}).get("description") or ""
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>',
        f"<style>{CSS}</style></head><body>",
        f'<p class="kind">{_e(kind)} · <a href="{_e(url)}">JSON</a>'
        f' · <a href="{_e(base_url)}/outputs/{ROOT_CATALOG}?f=html">all job outputs</a>'
        f' · <a href="{_e(base_url)}/browser/">STAC Browser</a></p>',
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(description)}</p>" if description else "",
    ]
    thumb = _thumbnail(doc, url)
    if thumb:
        parts.append(f'<p><img class="thumb" src="{_e(thumb)}" alt="thumbnail of {_e(title)}"></p>')
    links = [dict(lk, href=urljoin(url, lk.get("href", ""))) for lk in doc.get("links", [])]
    for rel, heading in (("child", "Catalogs"), ("item", "Items")):
        entries = [lk for lk in links if lk.get("rel") == rel]
        if entries:
            parts.append(f"<h2>{heading}</h2><ul>")
            parts += [
                f'<li><a href="{_e(page_href(lk["href"], base_url))}">'
                f"{_e(lk.get('title') or lk['href'])}</a></li>"
                for lk in entries
            ]
            parts.append("</ul>")
    assets = doc.get("assets", {})
    if assets:
        parts.append(
            "<h2>Assets</h2><table><tr><th>key</th><th>title</th><th>type</th><th>roles</th></tr>"
        )
        for key, asset in assets.items():
            href = urljoin(url, asset.get("href", ""))
            parts.append(
                f'<tr><td><a href="{_e(href)}">{_e(key)}</a></td><td>{_e(asset.get("title", ""))}'
                f"</td><td>{_e(asset.get('type', ''))}</td>"
                f"<td>{_e(', '.join(asset.get('roles') or []))}</td></tr>"
            )
        parts.append("</table>")
    props = doc.get("properties")
    if props:
        parts.append("<h2>Properties</h2><table>")
        parts += [
            f"<tr><th>{_e(k)}</th><td>{_value(v)}</td></tr>"
            for k, v in props.items()
            if k not in ("title", "description")
        ]
        parts.append("</table>")
    other = [lk for lk in links if lk.get("rel") not in ("child", "item")]
    if other:
        parts.append("<h2>Links</h2><table><tr><th>rel</th><th>title</th><th>href</th></tr>")
        parts += [
            f"<tr><td>{_e(lk.get('rel', ''))}</td><td>{_e(lk.get('title', ''))}</td>"
            f'<td><a href="{_e(page_href(lk["href"], base_url))}">{_e(lk["href"])}</a></td></tr>'
            for lk in other
        ]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;"
    "color:#222}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.5em}"
    "table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;"
    "padding:.3em .5em;text-align:left;vertical-align:top}th{background:#f6f6f6}"
    "code{font-size:.85em;word-break:break-all}.kind{color:#666}"
    "img.thumb{max-width:100%;border:1px solid #ccc}"
)
