"""/admin/api: login, settings, upstreams and models. Money is in routes_money.py."""

from __future__ import annotations

from aiohttp import web

from node.admin import upstreams
from node.admin.config import redacted, update_settings
from node.admin.fields import model_fields, settings_fields
from node.admin.http import (
    COOKIE,
    guarded,
    over_https,
    parts_of,
    session_of,
    set_session_cookie,
    str_field,
)
from node.http.web import json_response, read_json

routes = web.RouteTableDef()


# --- session ---------------------------------------------------------------------------------


@routes.post("/admin/api/login")
async def login(request: web.Request) -> web.Response:
    auth, ip = parts_of(request).admin, request.remote or "unknown"
    auth.throttle.check(ip)  # a client locked out is not even read
    body, _ = await read_json(request)
    token = await auth.login(str_field(body, "password"), ip)
    response = json_response({"csrf_token": auth.csrf_token(token)})
    set_session_cookie(request, response, token)
    return response


@routes.get("/admin/api/session")
@guarded
async def session(request: web.Request) -> web.Response:
    """After a page reload: the CSRF token of the cookie's session."""
    token = session_of(request)
    assert token is not None
    return json_response({"csrf_token": parts_of(request).admin.csrf_token(token)})


@routes.post("/admin/api/logout")
@guarded
async def logout(request: web.Request) -> web.Response:
    token = session_of(request)
    assert token is not None
    parts_of(request).admin.logout(token)
    response = json_response({"ok": True})
    response.del_cookie(
        COOKIE, path="/admin", secure=over_https(request), httponly=True, samesite="Strict"
    )
    return response


@routes.post("/admin/api/password")
@guarded
async def change_password(request: web.Request) -> web.Response:
    body, _ = await read_json(request)
    token = session_of(request)
    assert token is not None
    await parts_of(request).admin.change_password(
        token, str_field(body, "current_password"), str_field(body, "new_password")
    )
    return json_response({"ok": True})


# --- settings --------------------------------------------------------------------------------


@routes.get("/admin/api/settings")
@guarded
async def get_settings(request: web.Request) -> web.Response:
    return json_response(redacted(parts_of(request).settings))


@routes.get("/admin/api/settings/fields")
@guarded
async def get_settings_fields(request: web.Request) -> web.Response:
    return json_response({"fields": settings_fields()})


@routes.patch("/admin/api/settings")
@guarded
async def patch_settings(request: web.Request) -> web.Response:
    body, _ = await read_json(request)
    return json_response(redacted(await update_settings(parts_of(request), body)))


# --- upstreams and models --------------------------------------------------------------------


@routes.get("/admin/api/upstreams")
@routes.get("/admin/api/models")
@guarded
async def list_upstreams(request: web.Request) -> web.Response:
    return json_response(upstreams.listing(parts_of(request)))


@routes.post("/admin/api/upstreams")
@guarded
async def add_upstream(request: web.Request) -> web.Response:
    body, _ = await read_json(request)
    return json_response(await upstreams.add(parts_of(request), "upstreams", body), status=201)


@routes.patch("/admin/api/upstreams/{name}")
@guarded
async def edit_upstream(request: web.Request) -> web.Response:
    body, _ = await read_json(request)
    name = request.match_info["name"]
    return json_response(await upstreams.edit(parts_of(request), "upstreams", name, body))


@routes.delete("/admin/api/upstreams/{name}")
@guarded
async def remove_upstream(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return json_response(await upstreams.remove(parts_of(request), "upstreams", name))


@routes.post("/admin/api/upstreams/{name}/test")
@guarded
async def test_upstream(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return json_response(await upstreams.test_connection(parts_of(request), name))


@routes.get("/admin/api/models/fields")
@guarded
async def get_model_fields(request: web.Request) -> web.Response:
    """What the page's model editor shows of each [[models]] field."""
    return json_response({"fields": model_fields()})


@routes.post("/admin/api/models")
@guarded
async def add_model(request: web.Request) -> web.Response:
    body, _ = await read_json(request)
    return json_response(await upstreams.add(parts_of(request), "models", body), status=201)


@routes.patch("/admin/api/models/{id:.+}")
@guarded
async def edit_model(request: web.Request) -> web.Response:
    body, _ = await read_json(request)
    model_id = request.match_info["id"]
    return json_response(await upstreams.edit(parts_of(request), "models", model_id, body))


@routes.delete("/admin/api/models/{id:.+}")
@guarded
async def remove_model(request: web.Request) -> web.Response:
    model_id = request.match_info["id"]
    return json_response(await upstreams.remove(parts_of(request), "models", model_id))
