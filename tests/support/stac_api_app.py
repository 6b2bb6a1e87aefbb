"""ASGI app for the STAC API test: stac-fastapi-static serving the catalog in $CATALOG_HREF.

Run as `uvicorn tests.support.stac_api_app:app`. stac-fastapi.api 5.x (the newest that
stac-fastapi.static 1.0.1 allows) passes CORS options to Starlette positionally, and Starlette ≥ 1.x
inserted `allow_private_network` before `expose_headers`, so every request fails with
"TypeError: can only join an iterable". The shim below passes them by keyword; nothing else is
changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stac_fastapi.api import middleware
from starlette.middleware.cors import CORSMiddleware as _StarletteCORS


def _cors_init(
    self: Any,
    app: Any,
    allow_origins: Sequence[str] = ("*",),
    allow_methods: Sequence[str] = ("OPTIONS", "POST", "GET"),
    allow_headers: Sequence[str] = ("Content-Type",),
    allow_credentials: bool = False,
    allow_origin_regex: str | None = None,
    expose_headers: Sequence[str] = (),
    max_age: int = 600,
) -> None:
    _StarletteCORS.__init__(
        self,
        app,
        allow_origins=allow_origins,
        allow_methods=allow_methods,
        allow_headers=allow_headers,
        allow_credentials=allow_credentials,
        allow_origin_regex=allow_origin_regex,
        expose_headers=expose_headers,
        max_age=max_age,
    )


middleware.CORSMiddleware.__init__ = _cors_init

from stac_fastapi.static.api import Settings, make_api  # noqa: E402

app = make_api(Settings()).app  # catalog_href comes from $CATALOG_HREF
