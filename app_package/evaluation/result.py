"""The typed records of an evaluation: what was compared, what was left out and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app_package.evaluation.mapping import ClassMapping
    from app_package.evaluation.metrics import Agreement

Bounds = tuple[float, float, float, float]  # left, bottom, right, top


@dataclass(frozen=True)
class Exclusions:
    """The cells inside reference polygons that were not compared, by reason."""

    reference_cells: int  # cells whose centre lies inside any reference polygon (on the map)
    overlapping: int  # inside polygons of different reference classes
    nodata: int  # the map has no data there
    not_a_class: dict[int, int] = field(default_factory=dict)  # map value -> cells (e.g. cloud)

    @property
    def total(self) -> int:
        return self.overlapping + self.nodata + sum(self.not_a_class.values())


@dataclass(frozen=True)
class MapInfo:
    """The class map as read."""

    href: str
    crs: str
    bounds: Bounds
    shape: tuple[int, int]  # rows, columns of the whole map
    resolution: tuple[float, float]
    nodata: int | None


@dataclass(frozen=True)
class ReferenceInfo:
    """The reference polygons as read."""

    href: str
    field: str
    crs: str
    bounds: Bounds  # in its own CRS
    features: int  # in the file
    features_without_value: int  # null in `field`: left out
    features_without_geometry: int  # null or empty geometry: left out


@dataclass(frozen=True)
class Evaluation:
    """A class map compared with reference polygons."""

    map: MapInfo
    reference: ReferenceInfo
    mapping: ClassMapping
    classes: tuple[str, ...]  # the map classes (columns), by value
    agreement: Agreement
    excluded: Exclusions
    window: Bounds  # the part of the map that was compared (the map's CRS)
