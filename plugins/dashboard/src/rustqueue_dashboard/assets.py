"""The dashboard's static files: ``<prefix>`` serves ``index.html`` and ``<prefix>/<path>`` any shipped
asset. They hold no data, so they are public even with auth on; the page asks for a token and sends
it with every API call."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from litestar import Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from rustqueue_dashboard import __version__

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

PUBLIC = {"rustqueue_public": True}
CONTENT_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_PREFIX_MARKER = "__RQ_PREFIX__"
_VERSION_MARKER = "__RQ_VERSION__"


@cache
def shipped_assets() -> dict[str, bytes]:
    """Every file of the ``static`` folder by its relative path, read once: requests can only ever get
    one of these (no path reaches the file system, and unknown paths cache nothing)."""
    assets: dict[str, bytes] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            name = prefix + child.name
            if child.is_dir():
                walk(child, name + "/")
            elif PurePosixPath(child.name).suffix in CONTENT_TYPES and not child.name.startswith("."):
                assets[name] = child.read_bytes()

    walk(resources.files("rustqueue_dashboard").joinpath("static"), "")
    return assets


def read_asset(path: str) -> bytes | None:
    return shipped_assets().get(path.lstrip("/"))


def index_html(prefix: str) -> bytes:
    page = read_asset("index.html")
    assert page is not None, "index.html is missing from the package"
    text = page.decode().replace(_PREFIX_MARKER, html.escape(prefix)).replace(_VERSION_MARKER, __version__)
    return text.encode()


def asset_route_handlers(prefix: str) -> list[HTTPRouteHandler]:
    page = index_html(prefix)
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

    @get([prefix, prefix + "/"], opt=PUBLIC, include_in_schema=False)
    async def dashboard_index() -> Response[Any]:
        return Response(page, media_type=CONTENT_TYPES[".html"], headers=headers)

    @get(prefix + "/{path:path}", opt=PUBLIC, include_in_schema=False)
    async def dashboard_asset(path: FromPath[str]) -> Response[Any]:
        if path.strip("/") == "index.html":
            return Response(page, media_type=CONTENT_TYPES[".html"], headers=headers)
        body = read_asset(path)
        if body is None:
            raise NotFoundException(f"No dashboard asset {path.lstrip('/')!r}")
        suffix = PurePosixPath(path).suffix
        return Response(body, media_type=CONTENT_TYPES[suffix], headers=headers)

    return [dashboard_index, dashboard_asset]
