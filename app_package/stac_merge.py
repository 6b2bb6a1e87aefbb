"""Merging STAC catalogs: one parent catalog that links several child catalogs.

The CWL classification package scatters `classify` over a list of products (one catalog each);
this is the step after the scatter that gathers them, so the package stages out ONE catalog:

    DEST/catalog.json                 parent catalog (one `child` link per product)
    DEST/<child-id>/catalog.json      each child catalog, copied with its items and assets

Children are copied (CWL inputs are read-only) and their folder is named after the child catalog's
id (`-2`, `-3`… on a clash). Links are rewritten by pystac so the parent is every child's and
every item's `root`; asset hrefs stay relative to their item, as they were.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import pystac

from app_package.errors import DataError, InputError, NotFoundError
from app_package.outputs import atomic_dir

logger = logging.getLogger(__name__)

CATALOG_FILE = "catalog.json"
COLLECTION_FILE = "collection.json"


def find_catalog_file(ref: Path) -> Path:
    """The catalog (or collection) JSON of `ref`: the file itself, or the one in folder `ref`."""
    ref = Path(ref)
    if ref.is_file():
        return ref
    if not ref.is_dir():
        raise NotFoundError(f"catalog {ref} does not exist: pass a folder holding {CATALOG_FILE}")
    for name in (CATALOG_FILE, COLLECTION_FILE):
        if (ref / name).is_file():
            return ref / name
    present = ", ".join(sorted(p.name for p in ref.iterdir())[:10]) or "nothing"
    raise NotFoundError(
        f"folder {ref} holds no {CATALOG_FILE} (found: {present}): pass the output folder of "
        "`app-package classify` or `app-package train`, or another static STAC catalog"
    )


def _child_name(catalog_id: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", catalog_id).strip(".-") or "catalog"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def _relocate_assets(child: pystac.Catalog, src: Path, dst: Path) -> None:
    """Point assets that lived inside the source folder at their copies; make them relative.

    Loads every item now, while its hrefs still resolve under the copied folder.
    """
    for item in child.get_items(recursive=True):
        for asset in item.assets.values():
            href = Path(asset.get_absolute_href() or "")
            if "://" not in asset.href and href.resolve().is_relative_to(src):
                asset.href = str(dst / href.resolve().relative_to(src))
        item.make_asset_hrefs_relative()


def build_parent(
    children: Sequence[pystac.Catalog],
    *,
    catalog_id: str,
    description: str,
    title: str | None = None,
) -> pystac.Catalog:
    """A parent catalog linking `children` (pure: nothing is read or written)."""
    parent = pystac.Catalog(id=catalog_id, description=description, title=title)
    for child in children:
        parent.add_child(child)
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
        raise InputError("parent catalog id is empty: pass --id NAME")
    files = [find_catalog_file(Path(s)) for s in sources]
    with atomic_dir(Path(dest)) as tmp:
        taken: set[str] = set()
        children: list[pystac.Catalog] = []
        for f in files:
            try:
                original = pystac.read_file(f)
            except (OSError, ValueError, pystac.STACError) as e:
                raise DataError(f"cannot read STAC catalog {f}: {e}") from e
            if not isinstance(original, pystac.Catalog):  # Collection is a Catalog subclass
                raise DataError(
                    f"{f} is a STAC {type(original).__name__}, not a catalog or collection: "
                    "pass the folder holding the catalog.json"
                )
            name = _child_name(original.id, taken)
            shutil.copytree(f.parent, tmp / name)
            child = pystac.read_file(tmp / name / f.name)
            assert isinstance(child, pystac.Catalog)
            _relocate_assets(child, f.parent.resolve(), (tmp / name).resolve())
            children.append(child)
            logger.info("merged %s as %s/", f, name)
        parent = build_parent(children, catalog_id=catalog_id, description=description, title=title)
        parent.set_self_href(str(tmp / CATALOG_FILE))
        parent.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return Path(dest) / CATALOG_FILE
