"""STAC Browser at `/browser/` (`app_package.service.browser`): the door on its own (redirect,
runtime configuration, the page shown without a build), then the real build (`make browser`) in
headless Chromium against a live server and a real classification job's outputs."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from starlette.types import Message

from app_package.service.browser import browser_routes
from tests.conftest import REPO
from tests.support.chromium import chromium
from tests.support.server import Server

if TYPE_CHECKING:
    from playwright.sync_api import Response as PageResponse

BUILD = REPO / "browser" / "dist"
BASE = "http://example.org/api"


def call(path: str, directory: Path) -> tuple[int, dict[str, str], bytes]:
    """One GET through the browser routes (an ASGI call, no server): status, headers, body."""
    from starlette.routing import Router

    app = Router(routes=browser_routes(BASE, directory))
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "method": "GET",
        "http_version": "1.1", "scheme": "http", "server": ("testserver", 80), "path": path,
        "root_path": "", "raw_path": path.encode(), "query_string": b"",
        "headers": [(b"host", b"testserver")],
    }  # fmt: skip
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


def test_without_a_build_the_page_says_how_to_make_one(tmp_path: Path) -> None:
    status, headers, body = call("/browser/", tmp_path / "absent")
    assert status == 404
    assert headers["content-type"].startswith("text/html")
    assert b"make browser" in body and b"APP_PACKAGE_BROWSER_DIR" in body
    assert str(tmp_path).encode() not in body  # the server's folders are nobody's business


def test_the_build_is_served_with_the_servers_catalog(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html>STAC Browser</html>")
    (tmp_path / "config.js").write_text("window.STAC_BROWSER_CONFIG = {};")  # the build's own
    status, headers, body = call("/browser", tmp_path)
    assert (status, headers["location"]) == (308, "http://testserver/browser/")
    assert call("/browser/", tmp_path)[2] == b"<html>STAC Browser</html>"
    status, headers, body = call("/browser/config.js", tmp_path)
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    prefix = b"window.STAC_BROWSER_CONFIG = "
    assert body.startswith(prefix)
    config = json.loads(body[len(prefix) :].rstrip(b";\n"))
    assert config == {"catalogUrl": f"{BASE}/outputs/catalog.json"}
    assert call("/browser/js/absent.js", tmp_path)[0] == 404


# ---------------------------------------------------------------- the real thing
@pytest.fixture(scope="module")
def build() -> Path:
    """STAC Browser built by `make browser` (a no-op when browser/dist is up to date)."""
    if shutil.which("npm") is None:
        if (BUILD / "index.html").is_file():
            return BUILD
        pytest.skip("npm not found: STAC Browser cannot be built (`make browser` needs Node 20)")
    done = subprocess.run(
        ["make", "-s", "browser"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return BUILD


@pytest.fixture(scope="module")
def classified(tmp_path_factory: pytest.TempPathFactory, build: Path) -> Iterator[Server]:
    """A server (the shipped configuration and model) that has classified the bundled product."""
    srv = Server(
        tmp_path_factory.mktemp("browser") / "var", config=REPO / "pygeoapi-config.yml"
    ).start()
    try:
        job = srv.submit("tile-classification", {"model": "models:/eurosat-classifier@champion"})
        status = srv.wait(job, ("successful", "failed", "dismissed"), timeout=600)
        assert status["status"] == "successful", status
        yield srv
    finally:
        srv.stop()


def job_item(srv: Server) -> tuple[str, dict[str, Any]]:
    """The classification item reached from the root catalog: its URL and document."""
    root = srv.get("/outputs/catalog.json").json()
    assert root["type"] == "Catalog"
    [child] = [lk["href"] for lk in root["links"] if lk["rel"] == "child"]
    catalog = requests.get(child, timeout=10).json()
    [item_href] = [lk["href"] for lk in catalog["links"] if lk["rel"] == "item"]
    url = requests.compat.urljoin(child, item_href)
    return url, requests.get(url, timeout=10).json()


@pytest.mark.slow  # builds STAC Browser when needed (~2 min), classifies the sample (~20 s)
def test_stac_browser_shows_a_classification_item(classified: Server, tmp_path: Path) -> None:
    srv = classified
    item_url, item = job_item(srv)
    assets = item["assets"]
    assert {"classification", "confidence", "thumbnail"} <= set(assets), sorted(assets)
    thumbnail = requests.compat.urljoin(item_url, assets["thumbnail"]["href"])
    refused: list[str] = []  # answers of 400 and over, to any request of the pages

    def note(response: PageResponse) -> None:
        if not response.ok:
            refused.append(f"{response.status} {response.url}")

    with chromium(tmp_path / "profile") as context:
        page = context.new_page()
        page.on("response", note)
        page.goto(f"{srv.url}/browser/")
        # the root catalog (the runtime config's catalogUrl) lists the job's output catalog
        page.get_by_role("heading", name="Job outputs", level=1).wait_for()
        page.screenshot(path=tmp_path / "1-outputs.png", full_page=True)
        # follow it, then the item, as a person would
        page.locator("a[href$='/catalog.json']", has_text="EuroSAT land cover of").first.click()
        item_link = page.locator("a[href$='-landcover.json']")
        item_link.first.wait_for()
        page.screenshot(path=tmp_path / "2-job-catalog.png", full_page=True)
        item_link.first.click()
        page.get_by_role("heading", name=item["properties"]["title"], level=1).wait_for()
        assert item_url.removeprefix(f"{srv.url}/outputs") in page.url  # #/<job>/<item>/…

        # the data assets are listed, by their titles
        listed = page.locator(".assets").inner_text()
        for key in ("classification", "confidence"):
            assert assets[key]["title"] in listed, (key, listed)
        # the thumbnail is shown, loaded, in the item's Thumbnails tab
        page.get_by_role("tab", name="Thumbnails").click()
        img = page.locator(f"img[src='{thumbnail}']")
        img.wait_for(state="visible")
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=img.element_handle()
        )
        size = img.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert size[0] > 0 and size[1] > 0, size
        img.scroll_into_view_if_needed()  # the second picture in the tab's scrolling box
        page.screenshot(path=tmp_path / "3-item.png", full_page=True)
    assert not refused, refused
    print(f"screenshots: {tmp_path}")
