"""The admin page: static files from the `admin_ui` package, served with a strict CSP.

Everything the page needs ships in admin_ui/static (no CDN, no build step); the policy below
forbids any other origin, inline script included.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

import admin_ui
from node.errors import NotFound

STATIC = Path(admin_ui.__file__).parent / "static"
NAME = re.compile(r"^[a-z0-9_-]+\.(html|css|js|svg)$")
TYPES = {"html": "text/html", "css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self';"
    " img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

routes = web.RouteTableDef()


def _file(name: str) -> web.Response:
    match = NAME.match(name)
    path = STATIC / name
    if match is None or not path.is_file():
        raise NotFound("no such file", code="not_found")
    charset = "utf-8" if match.group(1) != "svg" else None
    return web.Response(
        body=path.read_bytes(),
        content_type=TYPES[match.group(1)],
        charset=charset,
        headers=HEADERS,
    )


@routes.get("/admin")
@routes.get("/admin/")
async def page(request: web.Request) -> web.Response:
    return _file("index.html")


@routes.get("/admin/static/{name}")
async def static(request: web.Request) -> web.Response:
    return _file(request.match_info["name"])
