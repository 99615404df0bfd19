"""Liveness: 200 once the node can serve."""

from __future__ import annotations

from aiohttp import web

from node.http.web import json_response
from node.parts import PARTS

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    parts = request.app[PARTS]
    parts.db.query_one("SELECT 1")
    return json_response({"status": "ok", "models": len(parts.catalogue.all())})
