"""An evaluation for machines and people: the JSON report, its picture (the confusion matrix
with counts beside the per-class agreement) and a short text summary. Pure: records in, a
dict, PNG bytes or text out."""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Any, Final

import numpy as np

from app_package import __version__
from app_package.eo.bands import CLOUD_CLASS
from app_package.evaluation.result import Evaluation

REPORT_FILE: Final[str] = "evaluation.json"
PICTURE_FILE: Final[str] = "evaluation.png"
REPORT_TYPE: Final[str] = "map-evaluation"
ACCEPTED_EDGE: Final[str] = "#2E7D32"  # outline of the matrix cells that count as agreement


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{100.0 * share:.1f} %"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def report_document(e: Evaluation) -> dict[str, Any]:
    """The JSON report (links relative to the report: its picture sits beside it)."""
    a, x = e.agreement, e.excluded
    return {
        "type": REPORT_TYPE,
        "title": f"{e.map.href} against {e.reference.href} ({e.reference.field})",
        "software": {"app-package": __version__},
        "map": {**asdict(e.map), "classes": list(e.classes)},
        "reference": asdict(e.reference),
        "mapping": e.mapping.as_json(),
        "mapping_is_default": e.mapping.identity,
        "window": list(e.window),
        "cells": {
            "inside_reference": x.reference_cells,
            "compared": a.compared,
            "excluded": {
                "overlapping_reference_classes": x.overlapping,
                "nodata": x.nodata,
                "not_a_map_class": {str(v): n for v, n in sorted(x.not_a_class.items())},
            },
        },
        "overall_accuracy": a.overall_accuracy,
        "kappa": a.kappa,
        "balanced_accuracy": a.balanced_accuracy,
        "classes": [
            {
                "reference": value,
                "accepted": e.mapping.names(value),
                "cells": int(a.cells[i]),
                "agreeing": int(a.agreeing[i]),
                "agreement": a.per_class[i],
            }
            for i, value in enumerate(e.mapping.values)
        ],
        "confusion_matrix": {
            "rows": list(e.mapping.values),
            "columns": list(e.classes),
            "counts": a.matrix.tolist(),
        },
        "links": [
            {
                "rel": "preview",
                "href": f"./{PICTURE_FILE}",
                "type": "image/png",
                "title": "Confusion matrix and per-class agreement",
            }
        ],
    }


def summary(e: Evaluation) -> str:
    """A few lines for a terminal: the scores, what was left out, each class's agreement."""
    a, x = e.agreement, e.excluded
    reasons = [f"{x.overlapping} in overlapping reference classes"] if x.overlapping else []
    if x.nodata:
        reasons.append(f"{x.nodata} nodata")
    reasons += [
        f"{n} of map value {v}" + (f" ({CLOUD_CLASS.name})" if v == CLOUD_CLASS.value else "")
        for v, n in sorted(x.not_a_class.items())
    ]
    left_out = f"; not comparable: {', '.join(reasons)}" if reasons else ""
    width = max(len(v) for v in e.mapping.values)
    lines = [
        f"{a.compared} cells compared of {x.reference_cells} inside reference polygons{left_out}",
        f"overall accuracy {_pct(a.overall_accuracy)}, kappa {_num(a.kappa)}, "
        f"balanced accuracy {_pct(a.balanced_accuracy)}",
    ]
    for i, value in enumerate(e.mapping.values):
        lines.append(
            f"  {value:<{width}}  {int(a.cells[i]):>9} cells  {_pct(a.per_class[i]):>7}  "
            f"({' | '.join(e.mapping.names(value))})"
        )
    return "\n".join(lines)


def report_png(e: Evaluation) -> bytes:
    """The confusion matrix as a heat map with counts (accepted pairs outlined) beside bars of
    each reference class's agreement, as PNG bytes (matplotlib, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    a = e.agreement
    rows, cols = list(e.mapping.values), list(e.classes)
    height = min(10.0, max(5.0, 0.4 * len(rows) + 3.0))
    fig = Figure(figsize=(11, height), dpi=90, facecolor="white")
    FigureCanvasAgg(fig)
    fig.suptitle(
        f"Overall accuracy {_pct(a.overall_accuracy)} · kappa {_num(a.kappa)} · "
        f"balanced accuracy {_pct(a.balanced_accuracy)} · {a.compared} cells",
        fontsize=11,
        fontweight="bold",
    )
    grid = fig.add_gridspec(1, 2, width_ratios=(3, 2), wspace=0.45)
    ax = fig.add_subplot(grid[0])
    cm = a.matrix
    ax.imshow(cm, cmap="Blues", aspect="auto", vmin=0, vmax=max(1, int(cm.max(initial=0))))
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("map class")
    ax.set_ylabel("reference class")
    ax.set_title("Confusion matrix (cells; outlined: counts as agreement)", fontsize=10)
    peak = int(cm.max(initial=0))
    for i, j in zip(*np.nonzero(a.accept), strict=True):
        ax.add_patch(
            Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=ACCEPTED_EDGE, linewidth=1.5)
        )
    for i, j in zip(*np.nonzero(cm), strict=True):
        colour = "white" if cm[i, j] > peak / 2 else "black"
        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=colour)
    bars = fig.add_subplot(grid[1])
    shares = [0.0 if s is None else 100.0 * s for s in a.per_class]
    positions = range(len(rows))
    bars.barh(positions, shares, color="#1976D2")
    bars.set_yticks(positions, rows, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlim(0, 100)
    bars.set_xlabel("agreement (% of the class's cells)")
    bars.set_title("Per-class agreement", fontsize=10)
    for i, share in enumerate(a.per_class):
        label = f"{_pct(share)} of {int(a.cells[i])}" if share is not None else "no cells"
        inside = shares[i] > 60  # the label inside a long bar, after a short one
        x = shares[i] - 1.5 if inside else shares[i] + 1.5
        colour = "white" if inside else "black"
        bars.text(x, i, label, va="center", ha="right" if inside else "left", fontsize=7.5,
                  color=colour)  # fmt: skip
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()
