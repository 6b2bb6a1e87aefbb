"""A static STAC catalog of Sentinel-2 items that grows while a test runs (for `watch` tests).

Items are copies of the bundled real L1C subset's item (app_package/sample/s2-l1c), each with its
own id, datetime and `eo:cloud_cover`; their assets point at one shared copy of the real JP2
bands. stac-fastapi-static re-reads a local (file) catalog on every search, so an item added
here (its JSON first, then the collection's link, each written atomically) is found by the next
search, as on a live STAC API.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from app_package.defaults import SAMPLE_PRODUCT
from app_package.eo.bands import S2_BANDS

SAMPLE = SAMPLE_PRODUCT.parent  # the bundled real L1C subset
COLLECTION = "sentinel-2-l1c"


def _write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


class GrowingCatalog:
    """catalog.json -> one collection -> items; `add` publishes one more item."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ids: list[str] = []
        coll = root / COLLECTION
        (coll / "data").mkdir(parents=True, exist_ok=True)
        for f in SAMPLE.glob("*.jp2"):  # a copy: the STAC server serves no symlinks
            shutil.copyfile(f, coll / "data" / f.name)
        _write(
            root / "catalog.json",
            {
                "type": "Catalog", "stac_version": "1.1.0", "id": "watch-test",
                "description": "Sentinel-2 L1C items for watch tests",
                "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"},
                          {"rel": "child", "href": f"./{COLLECTION}/collection.json",
                           "type": "application/json"}],
            },
        )  # fmt: skip
        self._write_collection()

    @property
    def catalog_json(self) -> Path:
        return self.root / "catalog.json"

    def _write_collection(self) -> None:
        links = [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
        ] + [
            {"rel": "item", "href": f"./{i}/{i}.json", "type": "application/geo+json"}
            for i in self.ids
        ]
        _write(
            self.root / COLLECTION / "collection.json",
            {
                "type": "Collection", "stac_version": "1.1.0", "id": COLLECTION,
                "description": "Sentinel-2 L1C (copies of the bundled real subset)",
                "license": "proprietary",
                "extent": {"spatial": {"bbox": [[12.0, 52.0, 13.0, 53.0]]},
                           "temporal": {"interval": [["2017-01-01T00:00:00Z", None]]}},
                "links": links,
            },
        )  # fmt: skip

    def item(self, item_id: str, cloud_cover: float, day: int = 16) -> dict[str, Any]:
        """The sample item renamed, dated 2017-02-<day>, linked into this catalog."""
        item = json.loads((SAMPLE / "item.json").read_text())
        item["id"] = item_id
        item["collection"] = COLLECTION
        item["properties"]["datetime"] = f"2017-02-{day:02d}T10:21:01Z"
        item["properties"]["eo:cloud_cover"] = cloud_cover
        for asset in item["assets"].values():
            asset["href"] = f"../data/{Path(asset['href']).name}"
        item["links"] = [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
        ]
        assert {b.name for b in S2_BANDS} <= set(item["assets"])
        return item

    def write_item(self, item_id: str, cloud_cover: float, day: int = 16) -> dict[str, Any]:
        """Write an item's JSON (served by the STAC server's static files) without listing it."""
        item = self.item(item_id, cloud_cover, day)
        folder = self.root / COLLECTION / item_id
        folder.mkdir(exist_ok=True)
        _write(folder / f"{item_id}.json", item)
        return item

    def add(self, item_id: str, cloud_cover: float, day: int = 16) -> dict[str, Any]:
        """Publish one more item: its JSON, then the collection's link to it."""
        item = self.write_item(item_id, cloud_cover, day)
        self.ids.append(item_id)
        self._write_collection()
        return item

    def url_of(self, stac_url: str, item_id: str) -> str:
        """The item JSON's URL on the STAC server (what a search's `self` link says)."""
        return f"{stac_url.rstrip('/')}/{COLLECTION}/{item_id}/{item_id}.json"
