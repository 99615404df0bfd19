"""A client of the admin API over real HTTP: a cookie jar, the CSRF token, JSON in and out."""

from __future__ import annotations

from typing import Any

import aiohttp

PASSWORD = "correct horse battery staple"


class AdminClient:
    def __init__(self, url: str):
        self.url = url
        # unsafe=True: accept cookies from an IP address (the node listens on 127.0.0.1)
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def login(self, password: str = PASSWORD) -> tuple[int, Any]:
        status, body, _ = await self.call("POST", "/admin/api/login", {"password": password})
        if status == 200:
            self.csrf = body["csrf_token"]
        return status, body

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        csrf: bool = True,
        more: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}
        headers |= more or {}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as resp:
            text = await resp.text()
            data = await resp.json(content_type=None) if text else None
            return resp.status, data, resp

    async def get(self, path: str) -> Any:
        status, body, _ = await self.call("GET", path)
        assert status == 200, (path, status, body)
        return body

    async def send(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        got, data, _ = await self.call(method, path, body)
        assert got == status, (method, path, got, data)
        return data
