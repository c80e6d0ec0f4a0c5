"""What the real-browser tests share: how Chromium starts, and the app served on a free port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from playwright.async_api import Browser, async_playwright

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
