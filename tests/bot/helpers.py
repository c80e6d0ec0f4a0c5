"""Helpers for API tests: a chat session driven through the HTTP API."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp.test_utils import TestClient

_ids = itertools.count(1)


class ChatSession:
    """One anonymous web chat, as the page would drive it."""

    def __init__(self, client: TestClient, data: dict[str, Any]) -> None:
        self.client = client
        self.id: str = data["session_id"]
        self.token: str = data["token"]
        self.greeting: list[dict[str, Any]] = data["replies"]
        self.last: dict[str, Any] = {"replies": data["replies"], "mode": "bot"}

    @classmethod
    async def open(cls, client: TestClient, **body: Any) -> ChatSession:
        resp = await client.post("/api/chat/sessions", json=body)
        assert resp.status == 201, await resp.text()
        return cls(client, await resp.json())

    async def say(self, text: str, client_message_id: str | None = None) -> dict[str, Any]:
        """Send text; returns the JSON answer (asserting 200)."""
        status, data = await self.post(text, client_message_id)
        assert status == 200, data
        self.last = data
        return data

    async def post(self, text: Any, client_message_id: str | None = None) -> tuple[int, Any]:
        cid = client_message_id or f"c{next(_ids)}"
        resp = await self.client.post(
            f"/api/chat/sessions/{self.id}/messages",
            json={"text": text, "client_message_id": cid},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return resp.status, await resp.json()

    def options(self) -> list[str]:
        """Values of the quick replies offered last."""
        return [o["value"] for r in self.last["replies"] for o in r["options"]]

    def texts(self) -> str:
        """All reply texts of the last answer, joined."""
        return "\n".join(r["text"] for r in self.last["replies"])
