"""A volunteer's console driven over HTTP and WebSocket, against any running server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp

PASSWORD = "volunteer-password-123"


def base_url(server: Any) -> str:
    """The origin of a test client or test server ('http://127.0.0.1:PORT'), or a URL as is."""
    if isinstance(server, str):
        return server.rstrip("/")
    return str(server.make_url("/")).rstrip("/")


def conversation_of(event: dict[str, Any]) -> str | None:
    """Which conversation a console event is about."""
    if "conversation_id" in event:
        return event["conversation_id"]
    return (event.get("conversation") or {}).get("id")


class Console:
    """One volunteer's browser: its own cookie jar, CSRF token and WebSocket."""

    def __init__(self, server: Any, password: str = PASSWORD) -> None:
        self.base = base_url(server)
        self.password = password
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.events: list[dict[str, Any]] = []

    async def login(self, username: str) -> dict[str, Any]:
        """POST /api/console/login; keeps the CSRF token."""
        async with self.http.post(
            self.base + "/api/console/login",
            json={"username": username, "password": self.password},
        ) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        self.csrf = body["csrf_token"]
        return body["user"]

    async def get(self, path: str) -> tuple[int, Any]:
        """GET a console API path."""
        async with self.http.get(self.base + path) as r:
            return r.status, await r.json()

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        """POST a console API path with the CSRF header."""
        async with self.http.post(
            self.base + path, json=body or {}, headers={"X-CSRF-Token": self.csrf}
        ) as r:
            return r.status, await r.json()

    async def connect(self) -> None:
        """Open the console WebSocket (from the page's own origin) and read its hello."""
        self.ws = await self.http.ws_connect(
            self.base + "/api/console/ws", headers={"Origin": self.base}
        )
        hello = await self.ws.receive_json(timeout=5)
        assert hello["type"] == "hello"

    async def next_event(
        self, type_: str, conversation: str | None = None, timeout: float = 5.0, **message: Any
    ) -> dict[str, Any]:
        """The next event of type_ (about that conversation, with those message fields)."""
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            while True:
                event = await self.ws.receive_json()
                self.events.append(event)
                msg = event.get("message") or {}
                if (
                    event.get("type") == type_
                    and (conversation is None or conversation_of(event) == conversation)
                    and all(msg.get(k) == v for k, v in message.items())
                ):
                    return event

    async def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Every event that arrives within the next `seconds` (also kept in self.events)."""
        assert self.ws is not None
        got: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    event = await self.ws.receive_json()
                    self.events.append(event)
                    got.append(event)
        return got

    async def close(self) -> None:
        """Close the WebSocket and the HTTP session."""
        if self.ws is not None:
            await self.ws.close()
        await self.http.close()
