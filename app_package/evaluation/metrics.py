"""Agreement between reference classes and map classes, in plain numpy (no I/O).

Rows are reference classes, columns map classes; `accept[r, c]` says whether map class c
agrees with reference class r (a reference class may accept several map classes). With one
accepted class per row this is the usual square confusion matrix, and the kappa below is
Cohen's; with several it is Cohen's kappa with 0/1 agreement weights: chance agreement is
the expected share of cells falling on accepted pairs if rows and columns were independent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app_package.evaluation.result import Exclusions

OUTSIDE = -1  # reference label of a cell inside no polygon (or excluded)


@dataclass(frozen=True)
class Agreement:
    """The confusion matrix and what it says."""

    matrix: np.ndarray  # [R, C] int64 cell counts
    accept: np.ndarray  # [R, C] bool: map class c agrees with reference class r
    cells: np.ndarray  # [R] cells per reference class
    agreeing: np.ndarray  # [R] of which the map agrees
    overall_accuracy: float | None  # agreeing / compared cells
    kappa: float | None  # None where chance agreement is 1 (undefined)
    balanced_accuracy: float | None  # mean per-class agreement over classes with cells

    @property
    def compared(self) -> int:
        return int(self.matrix.sum())

    @property
    def per_class(self) -> list[float | None]:
        """Share of each reference class's cells where the map agrees (None: no cells)."""
        return [
            float(a) / float(n) if n else None
            for a, n in zip(self.agreeing, self.cells, strict=True)
        ]


def confusion_matrix(reference: np.ndarray, mapped: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """[rows, cols] int64 counts of (reference, map) index pairs; pairs with a negative index
    (not comparable) are left out."""
    r = np.asarray(reference, dtype=np.int64).ravel()
    m = np.asarray(mapped, dtype=np.int64).ravel()
    if r.shape != m.shape:
        raise ValueError(f"reference has {r.size} cells but the map {m.size}")
    keep = (r >= 0) & (m >= 0)
    r, m = r[keep], m[keep]
    if r.size and (r.max() >= rows or m.max() >= cols):
        raise ValueError(f"indices must lie in [0, {rows}) × [0, {cols})")
    return np.bincount(r * cols + m, minlength=rows * cols).reshape(rows, cols).astype(np.int64)


def kappa(matrix: np.ndarray, accept: np.ndarray) -> float | None:
    """Cohen's kappa with 0/1 agreement weights `accept`: (p_o - p_e) / (1 - p_e)."""
    n = float(matrix.sum())
    if n == 0:
        return None
    p_o = float(matrix[accept].sum()) / n
    expected = np.outer(matrix.sum(axis=1), matrix.sum(axis=0)) / (n * n)
    p_e = float(expected[accept].sum())
    if np.isclose(p_e, 1.0):
        return None
    return (p_o - p_e) / (1.0 - p_e)


def agreement(matrix: np.ndarray, accept: np.ndarray) -> Agreement:
    """Per-class and overall agreement, kappa and balanced accuracy of a confusion matrix."""
    matrix = np.asarray(matrix, dtype=np.int64)
    accept = np.asarray(accept, dtype=bool)
    if matrix.shape != accept.shape:
        raise ValueError(f"matrix {matrix.shape} and accept {accept.shape} differ in shape")
    cells = matrix.sum(axis=1)
    agreeing = np.where(accept, matrix, 0).sum(axis=1)
    n = int(cells.sum())
    present = cells > 0
    return Agreement(
        matrix=matrix,
        accept=accept,
        cells=cells,
        agreeing=agreeing,
        overall_accuracy=float(agreeing.sum()) / n if n else None,
        kappa=kappa(matrix, accept),
        balanced_accuracy=float(np.mean(agreeing[present] / cells[present]))
        if present.any()
        else None,
    )


def compare_cells(
    reference: np.ndarray,
    conflict: np.ndarray,
    map_values: np.ndarray,
    class_values: np.ndarray,
    nodata: int | None,
) -> tuple[np.ndarray, Exclusions]:
    """The map-class index of each reference cell, and the cells left out and why.

    `reference`: reference-class index per cell (OUTSIDE: in no polygon); `conflict`: cells
    inside polygons of different classes; `map_values`: the map; `class_values`: the map
    values that are classes (their position is the column). A cell is compared when it lies in
    exactly one reference class and the map holds a class there; nodata and any other value
    (e.g. cloud) are counted per value and left out. Returns map-class indices (OUTSIDE where
    not compared) and the exclusions.
    """
    in_one = (reference >= 0) & ~conflict
    inside = in_one | conflict
    lut = np.full(max(256, int(map_values.max(initial=0)) + 1), OUTSIDE, dtype=np.int64)
    lut[class_values] = np.arange(len(class_values))
    column = lut[map_values]
    not_class = in_one & (column < 0)
    values, counts = np.unique(map_values[not_class], return_counts=True)
    by_value = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    nodata_cells = by_value.pop(int(nodata), 0) if nodata is not None else 0
    column = np.where(in_one, column, OUTSIDE)
    return column, Exclusions(
        reference_cells=int(inside.sum()),
        overlapping=int(conflict.sum()),
        nodata=nodata_cells,
        not_a_class=by_value,
    )
