"""The STAC item and catalog describing a classification output (pure: builds objects)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app_package.eo.bands import CLOUD_CLASS, EUROSAT_CLASSES

if TYPE_CHECKING:
    import pystac
    from affine import Affine
    from rasterio.crs import CRS

PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER = "https://stac-extensions.github.io/raster/v2.0.0/schema.json"
CLASSIFICATION = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
PROCESSING = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
EO = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"

CLASS_ASSET = "classification"
CONFIDENCE_ASSET = "confidence"
PREVIEW_ASSET = "preview"
THUMBNAIL_ASSET = "thumbnail"
CLOUD_MASK_ASSET = "cloud-mask"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def output_id(source_id: str, kind: str) -> str:
    """The id of an output item derived from a product, e.g. `s2a_msil1c_…-landcover`:
    lowercase and URL-safe, as STAC's best practices ask of ids (they name folders too)."""
    return re.sub(r"[^a-z0-9_.-]+", "-", f"{source_id}-{kind}".lower()).strip("-")


@dataclass(frozen=True)
class MapClass:
    """One class as written in the map: value, name, description, display colour."""

    value: int
    name: str
    description: str
    rgb: tuple[int, int, int]

    @property
    def color_hex(self) -> str:
        return "".join(f"{c:02X}" for c in self.rgb)


CLOUD_MAP_CLASS = MapClass(CLOUD_CLASS.value, CLOUD_CLASS.name, CLOUD_CLASS.title, CLOUD_CLASS.rgb)


def value_colors(classes: Sequence[MapClass]) -> list[tuple[int, int, int]]:
    """Colours indexed by value (`colors[v]` is value v's; black where no class has v)."""
    colors = [(0, 0, 0)] * (max((c.value for c in classes), default=-1) + 1)
    for c in classes:
        colors[c.value] = c.rgb
    return colors


@dataclass(frozen=True)
class CloudSummary:
    """What the item says of the cloud mask: how it was made, the share of cells it took,
    its own values and resolution."""

    method: str
    threshold: float
    cover: float  # eo:cloud_cover, percent of the map's valid cells
    values: Sequence[MapClass]
    resolution: float


def map_classes(names: tuple[str, ...]) -> list[MapClass]:
    """Classes in model output order; colours and titles looked up by name (EuroSAT's)."""
    known = {c.name: c for c in EUROSAT_CLASSES}
    out = []
    for i, n in enumerate(names):
        c = known.get(n)
        if c is not None:
            out.append(MapClass(i, n, c.title, c.rgb))
        else:  # a class EuroSAT lacks: a stable, distinct grey-blue shade
            shade = (37 * (i + 1)) % 200 + 40
            out.append(MapClass(i, n, n, (shade, shade, 255 - shade)))
    return out


def footprint(
    bounds: tuple[float, float, float, float], crs: CRS, densify: int = 10
) -> dict[str, Any]:
    """The product extent as a WGS84 GeoJSON polygon (edges densified before reprojecting)."""
    from rasterio.warp import transform_geom

    left, bottom, right, top = bounds
    ring: list[tuple[float, float]] = []
    corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
        ring += [
            (x0 + (x1 - x0) * k / densify, y0 + (y1 - y0) * k / densify) for k in range(densify)
        ]
    ring.append(ring[0])
    geom = {"type": "Polygon", "coordinates": [ring]}
    out: dict[str, Any] = transform_geom(crs, "EPSG:4326", geom)
    out["coordinates"] = [[[round(x, 7), round(y, 7)] for x, y in r] for r in out["coordinates"]]
    return dict(out)


def bbox_of(geom: dict[str, Any]) -> list[float]:
    """[west, south, east, north] of a GeoJSON polygon's outer ring."""
    xs = [p[0] for p in geom["coordinates"][0]]
    ys = [p[1] for p in geom["coordinates"][0]]
    return [min(xs), min(ys), max(xs), max(ys)]


@dataclass(frozen=True)
class OutputGrid:
    """The map's grid: CRS, transform, shape, and the product extent it covers."""

    crs: CRS
    transform: Affine
    width: int
    height: int
    product_bounds: tuple[float, float, float, float]


def projection_properties(grid: OutputGrid) -> dict[str, Any]:
    """The projection extension's properties of a map grid (WKT2 where there is no EPSG code)."""
    epsg = grid.crs.to_epsg()
    code = f"EPSG:{epsg}" if epsg else None
    t = grid.transform
    proj: dict[str, Any] = {
        "proj:code": code,
        "proj:shape": [grid.height, grid.width],
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
    }
    if code is None:
        proj["proj:wkt2"] = grid.crs.to_wkt()
    return proj


def classification_classes(classes: list[MapClass], nodata: int = 255) -> list[dict[str, Any]]:
    """`classification:classes` objects for the map's classes, plus its nodata value."""
    out: list[dict[str, Any]] = [
        {"value": c.value, "name": c.name, "description": c.description, "color_hint": c.color_hex}
        for c in classes
    ]
    out.append({"value": nodata, "name": "nodata", "description": "No data", "nodata": True})
    return out


def derived_item(
    *,
    item_id: str,
    grid: OutputGrid,
    acquired: datetime,
    source_href: str,
    source_type: str,
    title: str,
    description: str,
    lineage: str,
    software_version: str,
    properties: dict[str, Any],
) -> pystac.Item:
    """An output item over `grid`, derived from a source product: WGS84 footprint, projection,
    processing lineage, the source's datetime and a `derived_from` link; no assets yet."""
    import pystac

    geom = footprint(grid.product_bounds, grid.crs)
    props: dict[str, Any] = {
        "title": title,
        "description": description,
        "processing:software": {"app-package": software_version},
        "processing:lineage": lineage,
        **properties,
        **projection_properties(grid),
    }
    item = pystac.Item(
        id=item_id,
        geometry=geom,
        bbox=bbox_of(geom),
        datetime=acquired,
        properties=props,
        stac_extensions=[PROJECTION, RASTER, CLASSIFICATION, PROCESSING],
    )
    item.add_link(
        pystac.Link("derived_from", source_href, media_type=source_type, title="Source product")
    )
    return item


def cog_asset(
    href: str,
    *,
    title: str,
    roles: list[str],
    data_type: str,
    nodata: int | str,
    resolution: float,
    classes: list[dict[str, Any]] | None = None,
) -> pystac.Asset:
    """A single-band COG asset with its raster (and classification) description, in STAC
    1.1's `bands` (data type and nodata are common metadata there; raster v2 adds the
    resolution), the convention the model's MLM item uses too."""
    import pystac

    extra: dict[str, Any] = {}
    if classes is not None:
        extra["classification:classes"] = classes
    extra["bands"] = [
        {
            "name": roles[-1],
            "data_type": data_type,
            "nodata": nodata,
            "raster:spatial_resolution": resolution,
        }
    ]
    return pystac.Asset(href, title=title, media_type=COG_TYPE, roles=roles, extra_fields=extra)


def thumbnail_asset(href: str, title: str) -> pystac.Asset:
    """The PNG picture for people (map, legend and true-colour quicklook), role `thumbnail`."""
    import pystac

    return pystac.Asset(href, title=title, media_type=pystac.MediaType.PNG, roles=["thumbnail"])


def build_item(
    *,
    item_id: str,
    source_id: str,
    source_href: str,
    source_type: str,
    acquired: datetime,
    grid: OutputGrid,
    classes: list[MapClass],
    model_uri: str,
    model_version: str | None,
    software_version: str,
    stride: int,
    hrefs: dict[str, str],
    model_item_href: str | None = None,
    clouds: CloudSummary | None = None,
    window_features: bool = False,
) -> pystac.Item:
    """The output item; `hrefs` maps asset keys (classification, confidence, and optionally
    preview, thumbnail and cloud-mask) to hrefs.

    `clouds`: the map's cloud class came from a cloud mask: `eo:cloud_cover` and the mask's
    asset (at `hrefs["cloud-mask"]`) are added.

    `window_features`: the chips' probabilities came from features computed once per strip and
    pooled per chip window (property `app-package:window_features`), not chip by chip.

    Lineage: `derived_from` the source product and, where known, the model's STAC MLM item
    (`model_item_href`), which links its MLflow run and training data in turn."""
    import pystac

    res = abs(grid.transform.a)
    cloud_props: dict[str, Any] = {}
    cloud_lineage = ""
    if clouds is not None:
        cloud_props = {
            "eo:cloud_cover": clouds.cover,
            "app-package:cloud_mask": clouds.method,
            "app-package:cloud_threshold": clouds.threshold,
        }
        cloud_lineage = (
            f"; cells of which the {clouds.method} cloud mask covers more than "
            f"{clouds.threshold:.0%} are class {CLOUD_MAP_CLASS.name} ({CLOUD_MAP_CLASS.value})"
        )
    item = derived_item(
        item_id=item_id,
        grid=grid,
        acquired=acquired,
        source_href=source_href,
        source_type=source_type,
        title=f"EuroSAT land cover of {source_id}",
        description=(
            f"Land-cover classes of {source_id}, one cell per {stride} px chip step "
            f"({res:g} m), from model {model_uri}"
        ),
        lineage=(
            f"Chips of the source product classified by {model_uri}"
            + (f" (version {model_version})" if model_version else "")
            + cloud_lineage
        ),
        software_version=software_version,
        properties={
            "app-package:model_uri": model_uri,
            "app-package:model_version": model_version,
            "app-package:stride_px": stride,
            "app-package:window_features": window_features,
            **cloud_props,
        },
    )
    if clouds is not None:
        item.stac_extensions.append(EO)
    if model_item_href:
        item.add_link(
            pystac.Link(
                "derived_from",
                model_item_href,
                media_type="application/geo+json",
                title=f"Model {model_uri} (STAC MLM item)",
            )
        )
    item.add_asset(
        CLASS_ASSET,
        cog_asset(
            hrefs[CLASS_ASSET],
            title="Land-cover class",
            roles=["data", "classification"],
            data_type="uint8",
            nodata=255,
            resolution=res,
            classes=classification_classes(classes),
        ),
    )
    item.add_asset(
        CONFIDENCE_ASSET,
        cog_asset(
            hrefs[CONFIDENCE_ASSET],
            title="Top-class probability (0–1)",
            roles=["data", "confidence"],
            data_type="float32",
            nodata="nan",
            resolution=res,
        ),
    )
    if clouds is not None and CLOUD_MASK_ASSET in hrefs:
        item.add_asset(
            CLOUD_MASK_ASSET,
            cog_asset(
                hrefs[CLOUD_MASK_ASSET],
                title=f"Cloud mask ({clouds.method})",
                roles=["data", "cloud"],
                data_type="uint8",
                nodata=255,
                resolution=clouds.resolution,
                classes=classification_classes(list(clouds.values)),
            ),
        )
    if PREVIEW_ASSET in hrefs:
        item.add_asset(
            PREVIEW_ASSET,
            pystac.Asset(
                hrefs[PREVIEW_ASSET],
                title="Preview",
                media_type=pystac.MediaType.PNG,
                roles=["overview", "visual"],
            ),
        )
    if THUMBNAIL_ASSET in hrefs:
        item.add_asset(
            THUMBNAIL_ASSET,
            thumbnail_asset(
                hrefs[THUMBNAIL_ASSET], "Land-cover map with legend beside a true-colour quicklook"
            ),
        )
    return item


def build_catalog(item: pystac.Item) -> pystac.Catalog:
    """A catalog holding the output item (the CWL stage-out convention)."""
    import pystac

    cat = pystac.Catalog(
        id=f"{item.id}-catalog",
        description=f"Classification output: {item.properties.get('title', item.id)}",
        title=str(item.properties.get("title") or item.id),
    )
    cat.add_item(item, title=item.properties.get("title") or item.id)
    return cat
