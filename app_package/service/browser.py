"""STAC Browser at `/browser/`: the static build `make browser` writes to `browser/dist`, opening
the job outputs' root catalog. The server writes the build's runtime `config.js` (catalogUrl
`{base URL}/outputs/catalog.json`); without a build, `/browser/` answers a 404 page saying how to
make one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

BROWSER_DIR_VARIABLE = "APP_PACKAGE_BROWSER_DIR"
# where `make browser` writes the build, when the package runs from a checkout
CHECKOUT_BUILD = Path(__file__).resolve().parents[2] / "browser" / "dist"

NOT_BUILT = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>STAC Browser is not built</title></head>
<body><h1>STAC Browser is not built</h1>
<p>This server serves STAC Browser from a build that is not there. Run <code>make browser</code>
in the app-package checkout (it needs Node.js 20 and npm), or point
<code>APP_PACKAGE_BROWSER_DIR</code> at a build, then restart the server.</p>
<p>The job outputs are still served as STAC:
<a href="../outputs/catalog.json">outputs/catalog.json</a>.</p></body></html>
"""


def browser_dir() -> Path:
    """The STAC Browser build: $APP_PACKAGE_BROWSER_DIR, else the checkout's `browser/dist`."""
    return Path(os.environ.get(BROWSER_DIR_VARIABLE) or CHECKOUT_BUILD)


def runtime_config(base_url: str) -> str:
    """The build's `config.js`: STAC Browser merges `window.STAC_BROWSER_CONFIG` into its own."""
    config = {"catalogUrl": f"{base_url.rstrip('/')}/outputs/catalog.json"}
    return f"window.STAC_BROWSER_CONFIG = {json.dumps(config)};\n"


class BrowserFiles:
    """The build's files (`index.html` for `/browser/`), or the not-built page."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files = StaticFiles(directory=directory, html=True, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (self.directory / "index.html").is_file():
            await HTMLResponse(NOT_BUILT, status_code=404)(scope, receive, send)
            return
        try:
            await self.files(scope, receive, send)
        except HTTPException as e:  # StaticFiles raises for 404 / 405
            await Response(e.detail, status_code=e.status_code)(scope, receive, send)


def browser_routes(base_url: str, directory: Path | None = None) -> list[BaseRoute]:
    """`/browser/` (the build, its runtime `config.js`) and `/browser` redirecting there."""
    config_js = runtime_config(base_url)

    async def config(request: Request) -> Response:
        return Response(
            config_js, media_type="text/javascript", headers={"Cache-Control": "no-cache"}
        )

    async def slash(request: Request) -> Response:
        return RedirectResponse(request.url.replace(path=request.url.path + "/"), 308)

    app = Router(
        routes=[
            Route("/config.js", config, methods=["GET", "HEAD"]),
            Mount("", app=BrowserFiles(directory or browser_dir())),
        ]
    )
    return [Route("/browser", slash, methods=["GET", "HEAD"]), Mount("/browser", app=app)]
