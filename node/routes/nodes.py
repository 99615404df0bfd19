"""Other nodes found on Nostr (kind-38421 announcements, signatures verified)."""

from __future__ import annotations

from aiohttp import web

from node.http.web import json_response
from node.parts import PARTS

routes = web.RouteTableDef()


@routes.get("/v1/nodes")
async def list_nodes(request: web.Request) -> web.Response:
    service = request.app[PARTS].nostr
    return json_response({"nodes": [n.to_json() for n in service.nodes()]})
