"""What the real-browser tests share: how Chromium starts, the app served on a free port, a
watch on what pages load and throw, and the staff login form."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web
from playwright.async_api import Browser, Page, Request, async_playwright

from bot.app import build_app
from bot.config import Settings
from bot.console.auth import ACCOUNTS

# Debian's Chromium as root in a sandbox with no network: no sandbox, no GPU, and none of the
# background connections that this machine's closed network would refuse.
CHROME_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """Run app on 127.0.0.1 on a port the OS picks, in this loop; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    listening = site._server
    assert isinstance(listening, asyncio.Server)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def chromium_browser(executable: str) -> AsyncIterator[Browser]:
    """Headless Chromium driven through Playwright's async API."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=CHROME_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Server:
    """The running app and where the browser reaches it."""

    app: web.Application
    base: str


@asynccontextmanager
async def app_served(
    settings: Settings, users: Iterable[tuple[str, str, str]] = ()
) -> AsyncIterator[Server]:
    """The real application served on a free local port, with these (name, role, password)
    staff accounts added."""
    app = build_app(settings)
    async with served(app) as base:
        for name, role, password in users:
            await app[ACCOUNTS].add_user(name, role, password)
        yield Server(app, base)


class Watch:
    """Records requests off the server, page script errors, and the API paths a page called."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.api: list[str] = []

    def attach(self, page: Page) -> Page:
        """Start watching page."""
        page.on("request", self._request)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    def _request(self, r: Request) -> None:
        url = r.url
        if not url.startswith((self.base, "data:", "about:")):
            self.foreign.append(url)
        elif url.startswith(self.base + "/api/"):
            self.api.append(r.method + " " + url[len(self.base) :])

    def check(self) -> None:
        """Assert nothing foreign was loaded and no script error happened."""
        assert self.foreign == []
        assert self.errors == []


async def log_in(page: Page, name: str, password: str) -> None:
    """Fill the staff login form (console or admin) and press 登录."""
    await page.get_by_label("用户名").fill(name)
    await page.get_by_label("密码").fill(password)
    await page.get_by_role("button", name="登录").click()
