"""`app-package stac-merge`: a parent catalog linking copied child catalogs, written atomically."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pystac
import pytest

from app_package.errors import DataError, NotFoundError
from app_package.stac.merge import merge_catalogs


def write_child(root: Path, catalog_id: str) -> Path:
    """A small self-contained catalog with one item and one asset file beside the item."""
    cat = pystac.Catalog(id=catalog_id, description=f"child {catalog_id}")
    item = pystac.Item(
        id=f"{catalog_id}-item",
        geometry={"type": "Point", "coordinates": [13.0, 52.0]},
        bbox=[13.0, 52.0, 13.0, 52.0],
        datetime=datetime(2017, 2, 16, tzinfo=UTC),
        properties={},
    )
    cat.add_item(item)
    cat.normalize_hrefs(str(root))
    item_dir = Path(item.get_self_href() or "").parent
    item_dir.mkdir(parents=True)
    (item_dir / "data.txt").write_text(catalog_id)
    item.add_asset("data", pystac.Asset(href=str(item_dir / "data.txt"), media_type="text/plain"))
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root


def test_merge_links_children_and_keeps_assets(tmp_path: Path) -> None:
    a = write_child(tmp_path / "a", "product-a")
    b = write_child(tmp_path / "b", "product-a")  # same id: the second folder gets a suffix
    out = merge_catalogs([a, b], tmp_path / "merged", catalog_id="tile-classification")
    assert out == tmp_path / "merged" / "catalog.json"
    parent = pystac.Catalog.from_file(str(out))
    parent.validate_all()
    children = list(parent.get_children())
    assert [c.id for c in children] == ["product-a", "product-a"]
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "catalog.json",
        "product-a",
        "product-a-2",
    ]
    for child in children:
        assert child.get_root() is parent
        (item,) = child.get_items()
        root_link = item.get_single_link("root")
        assert root_link is not None
        assert Path(root_link.get_absolute_href() or "").resolve() == out.resolve()
        asset = Path(item.assets["data"].get_absolute_href() or "")
        assert asset.read_text() == "product-a"
        assert asset.is_relative_to(out.parent)
    # relative links only: the folder can be staged out and moved as a whole
    for f in out.parent.rglob("*.json"):
        doc = json.loads(f.read_text())
        for link in [*doc["links"], *doc.get("assets", {}).values()]:
            assert not Path(link["href"]).is_absolute(), (f, link)
    # sources are untouched
    assert (a / "catalog.json").is_file()
    assert not list(tmp_path.glob("merged*tmp*"))


def test_merge_copies_json_as_written(tmp_path: Path) -> None:
    """No STAC migration: an older extension version stays as the child wrote it."""
    a = write_child(tmp_path / "a", "p")
    item_file = next(a.rglob("p-item.json"))
    ext = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
    doc = json.loads(item_file.read_text())
    doc["stac_extensions"] = [ext]
    doc["properties"]["custom:kept"] = 1
    item_file.write_text(json.dumps(doc))
    out = merge_catalogs([a], tmp_path / "merged")
    copied = json.loads((out.parent / "p" / item_file.relative_to(a)).read_text())
    assert copied["stac_extensions"] == [ext]
    assert copied["properties"] == doc["properties"]
    assert {k: v for k, v in copied.items() if k != "links"} == {
        k: v for k, v in doc.items() if k != "links"
    } | {"assets": copied["assets"]}


def test_folder_without_catalog_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "staged"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(NotFoundError, match=r"holds no catalog.json \(found: readme.txt\)"):
        merge_catalogs([empty], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_a_catalog_is_a_clear_error(tmp_path: Path) -> None:
    child = write_child(tmp_path / "a", "p")
    item_file = next(child.rglob("p-item.json"))
    with pytest.raises(DataError, match="not a catalog"):
        merge_catalogs([item_file], tmp_path / "out")
    assert not list(tmp_path.glob("*out*"))


def test_cli_exit_code_and_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    r = subprocess.run(
        [sys.executable, "-c", "from app_package.cli import main; main()", "stac-merge",
         str(tmp_path / "out"), str(missing)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 65  # EX_DATAERR: the input data are missing
    assert f"app-package stac-merge: error: catalog {missing} does not exist" in r.stderr
    a = write_child(tmp_path / "a", "p")
    r = subprocess.run(
        [sys.executable, "-c", "from app_package.cli import main; main()", "stac-merge",
         str(tmp_path / "out"), str(a), "--id", "parent"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert r.stdout.strip() == str(tmp_path / "out" / "catalog.json")
    assert json.loads((tmp_path / "out" / "catalog.json").read_text())["id"] == "parent"
