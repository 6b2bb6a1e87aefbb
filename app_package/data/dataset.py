"""Labelled EuroSAT chips from a STAC reference: listing, stratified sampling, loading, splitting.

A STAC reference is one of
- a local path or http(s) URL of a static `catalog.json` / `collection.json` (children and items
  are walked through their links);
- a collection with a stac-geoparquet asset (media type `application/vnd.apache.parquet`) listing
  its items — preferred when present: one read instead of one JSON file per item;
- a STAC API collection, `http(s)://host/.../collections/<id>`: detected by the `conformsTo` of its
  landing page (the `root` link) and searched with pystac-client.

The label is the single class object in the item property `classification:classes` (see
`app_package.data.eurosat_stac`); the chip is the item's `image` asset (else its first GeoTIFF data
asset), whose `bands` (or `eo:bands`) list gives the band order inside the file. Items are sorted
by id before sampling, so the same catalog gives the same chips for the same seed whichever way it
is served.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app_package.data.eurosat import read_chip
from app_package.data.eurosat_stac import (
    GEOPARQUET_MEDIA_TYPE,
    IMAGE_ASSET,
    LABEL_PROPERTY,
    SPLIT_PROPERTY,
    SPLITS,
)
from app_package.eo.bands import (
    EUROSAT_CHIP_SIZE,
    EUROSAT_CLASS_NAMES,
    EUROSAT_FILE_BAND_ORDER,
    parse_bands,
)
from app_package.errors import DataError, InputError, NotFoundError
from app_package.stac.io import (
    find_catalog_file,
    is_url,
    items,
    link_href,
    read_bytes,
    read_json,
    resolve_href,
)
from app_package.util.progress import ProgressCallback, no_progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledChips:
    """Chips and their labels, with where they came from."""

    x: np.ndarray  # uint16 [N, C, 64, 64], channels in `bands` order: the one copy of the chips
    y: np.ndarray  # int64 [N], index into EUROSAT_CLASS_NAMES
    bands: tuple[str, ...]
    item_ids: tuple[str, ...]
    source: str
    # each item's lon/lat bbox [w, s, e, n] (None where the item has none), in item_ids order
    bboxes: tuple[tuple[float, ...] | None, ...] = ()

    def digest(self) -> str:
        """sha256 over item ids, labels and bands: the dataset's lineage in one string."""
        payload = json.dumps(
            {"ids": list(self.item_ids), "y": [int(v) for v in self.y], "bands": list(self.bands)},
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def counts(self) -> dict[str, int]:
        """Number of chips per class name (classes present only), in class order."""
        values, n = np.unique(self.y, return_counts=True)
        return {EUROSAT_CLASS_NAMES[int(v)]: int(c) for v, c in zip(values, n, strict=True)}


@dataclass(frozen=True)
class ChipRecord:
    """One labelled chip as listed by a STAC item."""

    item_id: str
    class_index: int
    href: str  # absolute path or URL of the GeoTIFF
    file_bands: tuple[str, ...]  # band names in the file's order
    split: str | None
    bbox: tuple[float, ...] | None = None  # the item's lon/lat bbox


# ---------------------------------------------------------------- reading STAC
def _api_root(doc: dict[str, Any], ref: str) -> str | None:
    """The landing page URL if `doc` (fetched from `ref`) is a collection served by a STAC API.

    Candidates: the URL above `/collections/<id>` and the collection's `root` link; the one whose
    document declares item search in `conformsTo` is the API.
    """
    if not is_url(ref) or doc.get("type") != "Collection":
        return None
    candidates: list[str] = []
    if "/collections/" in ref:
        candidates.append(ref.rsplit("/collections/", 1)[0] + "/")
    root = link_href(doc, "root")
    if root is not None:
        candidates.append(resolve_href(root, ref))
    for url in candidates:
        try:
            landing = read_json(url)
        except (NotFoundError, DataError):
            continue
        conforms = landing.get("conformsTo") or []
        if any(str(c).endswith("/item-search") for c in conforms):
            return url
    return None


def _geoparquet_href(doc: dict[str, Any], ref: str) -> str | None:
    for asset in (doc.get("assets") or {}).values():
        href = str(asset.get("href", ""))
        if asset.get("type") == GEOPARQUET_MEDIA_TYPE or href.endswith(".parquet"):
            return resolve_href(href, ref)
    return None


def _read_geoparquet(href: str) -> Iterator[tuple[dict[str, Any], str]]:
    import pyarrow.parquet as pq
    import stac_geoparquet.arrow

    try:
        table = pq.read_table(io.BytesIO(read_bytes(href)))
    except Exception as e:  # pyarrow raises several kinds
        if isinstance(e, NotFoundError):
            raise
        raise DataError(f"cannot read the stac-geoparquet file {href}: {e}") from e
    for item in stac_geoparquet.arrow.stac_table_to_items(table):
        yield item, href  # asset hrefs in the parquet are relative to the parquet file


def _search_api(root_url: str, collection_id: str) -> Iterator[tuple[dict[str, Any], str]]:
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    try:
        client = Client.open(root_url)
        search = client.search(collections=[collection_id], limit=500)
        for item in search.items_as_dicts():
            base = (
                link_href(item, "self")
                or f"{root_url.rstrip('/')}/collections/{collection_id}/items/{item['id']}"
            )
            yield item, resolve_href(base, root_url)
    except APIError as e:
        raise DataError(f"STAC API {root_url} refused the search of {collection_id!r}: {e}") from e


def list_items(stac: str) -> tuple[list[tuple[dict[str, Any], str]], str]:
    """Every item dict of the reference with the href its relative links resolve against.

    Returns (items, how) where how is "api", "geoparquet" or "static".
    """
    found, how = iter_items(stac)
    return list(found), how


def iter_items(stac: str) -> tuple[Iterator[tuple[dict[str, Any], str]], str]:
    """`list_items` as an iterator: a caller that keeps only what it needs of each item never
    holds them all (27,000 item dicts take ~300 MB, most of which the process keeps once they
    are freed)."""
    ref = str(stac)
    if not is_url(ref):  # a staged-in folder: its catalog.json (or collection.json)
        ref = str(find_catalog_file(Path(ref).expanduser().resolve()))
    doc = read_json(ref)
    if "conformsTo" in doc and doc.get("type") != "Collection":
        raise InputError(
            f"{ref} is a STAC API landing page: pass one of its collections, "
            f"e.g. {ref.rstrip('/')}/collections/<id>"
        )
    root = _api_root(doc, ref)
    if root is not None:
        return _search_api(root, str(doc["id"])), "api"
    parquet = _geoparquet_href(doc, ref) if doc.get("type") == "Collection" else None
    if parquet is not None:
        return _read_geoparquet(parquet), "geoparquet"
    if doc.get("type") not in ("Catalog", "Collection"):
        raise DataError(
            f"{ref} is a STAC {doc.get('type')!r}, not a catalog or collection: "
            "pass the catalog.json or collection.json"
        )
    return items(ref), "static"


def _record(item: dict[str, Any], base: str) -> ChipRecord:
    item_id = str(item.get("id"))
    classes = (item.get("properties") or {}).get(LABEL_PROPERTY)
    if not isinstance(classes, list) or len(classes) != 1 or not isinstance(classes[0], dict):
        raise DataError(
            f"item {item_id} ({base}): property {LABEL_PROPERTY!r} must hold exactly one class "
            f"object, found {classes!r}: build the catalog with `app-package eurosat-to-stac`"
        )
    name = classes[0].get("name")
    if name not in EUROSAT_CLASS_NAMES:
        raise DataError(
            f"item {item_id} ({base}): class {name!r} is not a EuroSAT class "
            f"({', '.join(EUROSAT_CLASS_NAMES)})"
        )
    assets = item.get("assets") or {}
    asset = assets.get(IMAGE_ASSET)
    if asset is None:
        tiffs = [a for a in assets.values() if "image/tiff" in str(a.get("type", ""))]
        if not tiffs:
            raise DataError(
                f"item {item_id} ({base}) has no GeoTIFF asset (assets: "
                f"{', '.join(assets) or 'none'}): expected an {IMAGE_ASSET!r} asset"
            )
        asset = tiffs[0]
    band_list = asset.get("bands") or asset.get("eo:bands")
    file_bands = (
        parse_bands([str(b["name"]) for b in band_list]) if band_list else EUROSAT_FILE_BAND_ORDER
    )
    split = (item.get("properties") or {}).get(SPLIT_PROPERTY)
    bbox = item.get("bbox")
    return ChipRecord(
        item_id=item_id,
        class_index=EUROSAT_CLASS_NAMES.index(name),
        href=resolve_href(str(asset["href"]), base),
        file_bands=tuple(file_bands),
        split=str(split) if split is not None else None,
        bbox=tuple(float(v) for v in bbox) if isinstance(bbox, list | tuple) else None,
    )


# ---------------------------------------------------------------- sampling and splitting
def sample_per_class(
    records: Sequence[ChipRecord], samples_per_class: int | None, seed: int
) -> list[ChipRecord]:
    """`samples_per_class` records drawn at random (seeded) from each class present; all if None.

    Records are sorted by item id first, so the draw does not depend on listing order.
    """
    ordered = sorted(records, key=lambda r: (r.class_index, r.item_id))
    if samples_per_class is None:
        return ordered
    if samples_per_class < 1:
        raise InputError(f"samples_per_class={samples_per_class}: give a positive number")
    rng = np.random.default_rng(seed)
    out: list[ChipRecord] = []
    for ci, name in enumerate(EUROSAT_CLASS_NAMES):
        members = [r for r in ordered if r.class_index == ci]
        if not members:
            continue
        if samples_per_class > len(members):
            counts = {
                n: sum(r.class_index == i for r in ordered)
                for i, n in enumerate(EUROSAT_CLASS_NAMES)
            }
            raise InputError(
                f"samples_per_class={samples_per_class} but class {name} has only "
                f"{len(members)} chips (per class: "
                f"{', '.join(f'{k} {v}' for k, v in counts.items() if v)}): ask for at most "
                f"{min(v for v in counts.values() if v)}"
            )
        pick = np.sort(rng.choice(len(members), size=samples_per_class, replace=False))
        out.extend(members[int(i)] for i in pick)
    return out


def stratified_split(
    y: np.ndarray, *, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (train, val, test), each class split in the same proportions; seeded.

    Every class present gets at least one training chip, and one validation/test chip when that
    fraction is positive; otherwise InputError names the class and its count.
    """
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise InputError(f"{name}={f}: give a fraction in [0, 1)")
    if val_fraction + test_fraction >= 1.0:
        raise InputError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:g}: leave some chips "
            "for training (the sum must be < 1)"
        )
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
        n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
        if n - n_val - n_test < 1:
            name = EUROSAT_CLASS_NAMES[int(c)] if 0 <= int(c) < len(EUROSAT_CLASS_NAMES) else c
            raise InputError(
                f"class {name} has {n} chips: too few for a split with val_fraction="
                f"{val_fraction:g} and test_fraction={test_fraction:g} (needs at least "
                f"{n_val + n_test + 1}); use more samples per class or smaller fractions"
            )
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val : n_val + n_test])
        parts[0].append(idx[n_val + n_test :])
    train, val, test = (
        np.sort(np.concatenate(p)) if p else np.empty(0, dtype=np.int64) for p in parts
    )
    return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)


# ---------------------------------------------------------------- loading
def load_labelled_chips(
    stac: str,
    *,
    bands: Sequence[str] | None = None,
    samples_per_class: int | None = None,
    seed: int = 0,
    split: str | None = None,
    progress: ProgressCallback = no_progress,
    max_workers: int = 8,
) -> LabelledChips:
    """Load labelled chips from a STAC reference into one uint16 array, bands chosen by name.

    `split` keeps only items whose `eurosat:split` property is that value (train/val/test).
    Each chip is read straight into its row of an array allocated once: no copy of the chips is
    ever made (at EuroSAT's 27,000 chips the array is 2.7 GB with 12 bands).
    """
    t0 = time.perf_counter()
    band_names = parse_bands(list(bands) if bands is not None else None)
    if split is not None and split not in SPLITS:
        raise InputError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
    progress(0.0, f"listing items of {stac}")
    found, how = iter_items(str(stac))
    records = [_record(item, base) for item, base in found]  # each item dict dropped at once
    if split is not None:
        records = [r for r in records if r.split == split]
    if not records:
        what = f" in split {split!r}" if split else ""
        raise DataError(
            f"no items{what} found in {stac} ({how}): point at a catalog built by "
            "`app-package eurosat-to-stac`"
        )
    ids = [r.item_id for r in records]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise DataError(f"{stac} lists items more than once ({', '.join(dup)}): fix the catalog")
    chosen = sample_per_class(records, samples_per_class, seed)
    logger.info("loading %d of %d chips from %s (%s)", len(chosen), len(records), stac, how)
    progress(5.0, f"reading {len(chosen)} chips")

    x = np.empty((len(chosen), len(band_names), EUROSAT_CHIP_SIZE, EUROSAT_CHIP_SIZE), np.uint16)

    def read(i: int) -> int:
        r = chosen[i]
        missing = [b for b in band_names if b not in r.file_bands]
        if missing:
            raise DataError(
                f"item {r.item_id}: band(s) {', '.join(missing)} not in its asset "
                f"(bands: {', '.join(r.file_bands)})"
            )
        # URLs: one GET per chip (GDAL's range reads would hold the GIL while they wait)
        data = read_bytes(r.href) if is_url(r.href) else None
        read_chip(r.href, band_names, file_order=r.file_bands, data=data, out=x[i])
        return i

    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        for done, _ in enumerate(pool.map(read, range(len(chosen))), 1):
            if done % 50 == 0 or done == len(chosen):
                progress(5.0 + 95.0 * done / len(chosen), f"{done}/{len(chosen)} chips")
    logger.info(
        "loaded %d chips (%.1f MB) in %.1f s", len(x), x.nbytes / 1e6, time.perf_counter() - t0
    )
    return LabelledChips(
        x=x,
        y=np.array([r.class_index for r in chosen], dtype=np.int64),
        bands=band_names,
        item_ids=tuple(r.item_id for r in chosen),
        source=str(stac),
        bboxes=tuple(r.bbox for r in chosen),
    )
