"""Liveness: 200 once the node can serve."""

from __future__ import annotations

from aiohttp import web

from node.context import NODE
from node.http.web import json_response

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    node = request.app[NODE]
    node.db.query_one("SELECT 1")
    return json_response({"status": "ok", "models": len(node.catalogue.all())})
