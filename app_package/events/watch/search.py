"""What to watch: a STAC API item search (CQL2 JSON), whose criteria also filter pushed items."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app_package.errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Search:
    """A STAC API item search; the same criteria filter items pushed to the webhook."""

    stac_url: str | None = None
    collections: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    datetime: str | None = None
    max_cloud_cover: float | None = None
    filter: dict[str, Any] | None = None  # CQL2-JSON
    max_items: int = 1000

    @staticmethod
    def parse_filter(text: str | None) -> dict[str, Any] | None:
        """A CQL2 filter given as CQL2-JSON or CQL2-text, as CQL2-JSON."""
        if not text:
            return None
        import cql2

        try:
            expr = cql2.Expr(json.loads(text)) if text.lstrip().startswith("{") else None
            expr = expr or cql2.parse_text(text)
            expr.validate()
        except Exception as e:  # cql2 raises its own ValueError subclasses
            raise InputError(
                f"filter {text!r} is not valid CQL2 (text or JSON): {e}", field="filter"
            ) from e
        return dict(expr.to_json())

    def cql2(self) -> dict[str, Any] | None:
        """The filter sent to the API: the cloud-cover limit AND the user's filter."""
        parts: list[dict[str, Any]] = []
        if self.max_cloud_cover is not None:
            parts.append(
                {"op": "<=", "args": [{"property": "eo:cloud_cover"}, self.max_cloud_cover]}
            )
        if self.filter:
            parts.append(self.filter)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"op": "and", "args": parts}

    def matches(self, item: dict[str, Any]) -> str | None:
        """None when a pushed item meets the criteria, else why it does not."""
        collection = item.get("collection")
        if self.collections and collection not in self.collections:
            return f"collection {collection!r} is not one of {', '.join(self.collections)}"
        if self.bbox and item.get("bbox"):
            b = item["bbox"]
            w, s, e, n = (b[0], b[1], b[3], b[4]) if len(b) == 6 else (b[0], b[1], b[2], b[3])
            W, S, E, N = self.bbox
            if w > E or e < W or s > N or n < S:
                return f"bbox {b} is outside {list(self.bbox)}"
        if self.datetime:
            reason = _outside_window(item.get("properties") or {}, self.datetime)
            if reason:
                return reason
        expr = self.cql2()
        if expr:
            import cql2

            if not cql2.Expr(expr).matches(item):
                return f"the filter {cql2.Expr(expr).to_text()} does not match"
        return None


def _parse_time(value: str) -> datetime:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _outside_window(props: dict[str, Any], window: str) -> str | None:
    start_s, _, end_s = window.partition("/")
    if not end_s:
        end_s = start_s
    t0 = props.get("start_datetime") or props.get("datetime")
    t1 = props.get("end_datetime") or props.get("datetime")
    if not t0 or not t1:
        return "the item has no datetime"
    lo = None if start_s in ("", "..") else _parse_time(start_s)
    hi = None if end_s in ("", "..") else _parse_time(end_s)
    if (hi is not None and _parse_time(t0) > hi) or (lo is not None and _parse_time(t1) < lo):
        return f"datetime {t0} is outside {window}"
    return None
