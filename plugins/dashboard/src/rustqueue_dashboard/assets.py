"""The dashboard's static files: ``<prefix>`` serves ``index.html`` and ``<prefix>/<path>`` any shipped
asset.

With auth on they are protected like the original's dashboard (401 without a valid token). A browser
cannot send a bearer header when it navigates, so these routes, and only these, also take the token
from the ``rustqueue_token`` cookie. The routes hold no data, so the cookie unlocks nothing a forged
request could use: the JSON APIs still require the ``Authorization`` header. A browser (``Accept``
naming ``text/html``) that has no valid token gets the 401 as a small sign-in page that sets the cookie
and keeps the token for the tab; other clients get the JSON error envelope."""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from rustqueue_core.errors import Unauthorized
from rustqueue_core.models import Credentials
from rustqueue_dashboard import __version__

if TYPE_CHECKING:
    from litestar.handlers import HTTPRouteHandler

    from rustqueue_core.plugins import PluginHost

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
#: The cookie the sign-in page sets (path: the dashboard prefix); read by the page and asset routes only.
TOKEN_COOKIE = "rustqueue_token"
#: The key under which the page keeps the token for the tab (the same as ``static/js/api.js``).
SESSION_TOKEN_KEY = "rustqueue.dashboard.token"
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


def shell_credentials(request: Request[Any, Any, Any]) -> tuple[Credentials, bool]:
    """The caller's credentials for a page or asset, and whether they came from the cookie."""
    header = request.headers.get("authorization")
    from_cookie = False
    if header is None:
        cookie = request.cookies.get(TOKEN_COOKIE)
        if cookie:
            header, from_cookie = f"Bearer {unquote(cookie)}", True
    client = request.client
    credentials = Credentials(
        transport="http",
        header=header,
        peer=client.host if client else None,
        forwarded_for=request.headers.get("x-forwarded-for"),
    )
    return credentials, from_cookie


def sign_in_page(prefix: str, reason: str) -> bytes:
    """A self-contained page (no asset: those are protected too) asking for the token."""
    cookie_path = json.dumps(prefix).replace("<", "\\u003c")  # safe inside <script>
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · rustqueue dashboard · RustQueue compatible</title>
<style>
body{{font:15px/1.5 system-ui,sans-serif;background:#0f172a;color:#e2e8f0;display:grid;place-items:center;
min-height:100vh;margin:0}}main{{background:#1e293b;padding:2rem 2.5rem;border-radius:12px;max-width:24rem}}
h1{{font-size:1.2rem;margin:0 0 .5rem}}#reason{{color:#fca5a5}}label{{display:block;margin:1rem 0 .3rem}}
input{{width:100%;box-sizing:border-box;padding:.5rem;border-radius:6px;border:1px solid #475569;
background:#0f172a;color:inherit}}button{{margin-top:1rem;padding:.5rem 1.2rem;border:0;border-radius:6px;
background:#38bdf8;color:#0f172a;font-weight:600;cursor:pointer}}
</style></head>
<body><main>
<h1>rustqueue dashboard</h1>
<p id="reason">{html.escape(reason)}</p>
<form id="sign-in"><label for="token-input">Bearer token</label>
<input id="token-input" type="password" autocomplete="current-password" required autofocus>
<button id="token-submit" type="submit">Sign in</button></form>
</main>
<script>
document.getElementById("sign-in").addEventListener("submit", (event) => {{
  event.preventDefault();
  const token = document.getElementById("token-input").value;
  sessionStorage.setItem({json.dumps(SESSION_TOKEN_KEY)}, token);
  document.cookie = {json.dumps(TOKEN_COOKIE + "=")} + encodeURIComponent(token) + "; Path=" + {cookie_path}
    + "; SameSite=Strict" + (location.protocol === "https:" ? "; Secure" : "");
  location.reload();
}});
</script>
</body></html>
""".encode()


def asset_route_handlers(prefix: str, host: PluginHost | None = None) -> list[HTTPRouteHandler]:
    page = index_html(prefix)
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

    def admit(request: Request[Any, Any, Any]) -> Response[Any] | None:
        """``None`` when the caller may have the page or asset (always, with auth off); else the 401
        sign-in page for a browser. Other clients get the error raised by the auth plugin."""
        if host is None:
            return None
        credentials, from_cookie = shell_credentials(request)
        try:
            host.authenticate(credentials)
        except Unauthorized as exc:
            if "text/html" not in request.headers.get("accept", ""):
                raise
            reason = "That token was not accepted." if from_cookie else f"Authentication required: {exc.message}."
            return Response(sign_in_page(prefix, reason), status_code=401, media_type=CONTENT_TYPES[".html"],
                            headers={**headers, "WWW-Authenticate": "Bearer"})  # fmt: skip
        return None

    @get([prefix, prefix + "/"], opt=PUBLIC, include_in_schema=False)
    async def dashboard_index(request: Request[Any, Any, Any]) -> Response[Any]:
        denied = admit(request)
        if denied is not None:
            return denied
        return Response(page, media_type=CONTENT_TYPES[".html"], headers=headers)

    @get(prefix + "/{path:path}", opt=PUBLIC, include_in_schema=False)
    async def dashboard_asset(request: Request[Any, Any, Any], path: FromPath[str]) -> Response[Any]:
        denied = admit(request)
        if denied is not None:
            return denied
        if path.strip("/") == "index.html":
            return Response(page, media_type=CONTENT_TYPES[".html"], headers=headers)
        body = read_asset(path)
        if body is None:
            raise NotFoundException(f"No dashboard asset {path.lstrip('/')!r}")
        suffix = PurePosixPath(path).suffix
        return Response(body, media_type=CONTENT_TYPES[suffix], headers=headers)

    return [dashboard_index, dashboard_asset]
