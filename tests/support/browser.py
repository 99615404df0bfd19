"""Real Chromium for the admin page tests, driven by Playwright (never `playwright install`).

`make browser` installs /usr/bin/chromium with apt when it is missing; if it is still missing
the browser tests are skipped, saying so. Screenshots go to tests/artifacts/ (gitignored).

    async def test_x(chromium):
        page = await new_page(chromium)       # console errors are collected in page.errors
        page = await admin_page(chromium, node.url)  # the same, logged in to /admin
        ...
        await shot(page, "name")              # tests/artifacts/name.png
        await until(page, "document.title")   # poll an expression until it is truthy
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.admin_client import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing and could not be installed (`make browser`)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        await browser.close()


async def new_page(browser: Any, width: int = 1200) -> Any:
    """A fresh context (own cookies) and page; console errors and CSP reports land in .errors."""
    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    page.errors = []
    page.on("console", lambda msg: _console(page, msg))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    return page


async def admin_page(browser: Any, url: str, width: int = 1200) -> Any:
    """A new page logged in to the node's admin page at `url`, its app shown."""
    page = await new_page(browser, width)
    await page.goto(url + "/admin")
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button")
    await page.wait_for_selector("#app:not([hidden])")
    return page


async def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def until(page: Any, expression: str, timeout_s: float = 10.0) -> Any:
    """Poll `expression` until it is truthy. Not `page.wait_for_function`: its polling builds
    the predicate with eval, which the admin page's CSP refuses unless the first try holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not (value := await page.evaluate(expression)):
        if loop.time() > deadline:
            raise AssertionError(f"never true: {expression}")
        await asyncio.sleep(0.05)
    return value


def _console(page: Any, msg: Any) -> None:
    # A 4xx the page asked for (401 before login, a refused setting) is expected, not a fault.
    if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
        page.errors.append(msg.text)
