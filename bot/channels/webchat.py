"""The web chat: an anonymous JSON API plus a WebSocket for replies that arrive later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from bot.channels.base import ChannelContext, Inbound, Outbound
from bot.errors import ApiError, json_object

log = logging.getLogger(__name__)

LANGS = ("zh-CN", "zh-TW", "en")
CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
SCRIPT_ID = re.compile(r"^[a-z0-9_-]{1,64}$")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def child_topic(conversation_id: str) -> str:
    """Bus topic of one web chat session's late replies."""
    return f"child.{conversation_id}"


def bearer_token(request: web.Request) -> str:
    """The token from `Authorization: Bearer ...`, or a 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "Send the session token as 'Authorization: Bearer'.")
    return token.strip()


def check_text(text: Any, limit: int) -> str:
    """The message text, or a 400/413 saying why it cannot be accepted."""
    if not isinstance(text, str):
        raise ApiError(400, "invalid_text", "'text' must be a string.")
    if CONTROL.search(text):
        raise ApiError(400, "invalid_text", "'text' contains control characters.")
    text = text.strip()
    if not text:
        raise ApiError(400, "empty_text", "'text' is empty.")
    if len(text) > limit:
        raise ApiError(413, "text_too_long", f"'text' is longer than {limit} characters.")
    return text


class WebChatChannel:
    """Channel adapter for the browser chat page (and the mini-program's own chat page)."""

    name = "web"

    def __init__(self, *, max_text_chars: int = 2000, default_lang: str = "zh-CN") -> None:
        self.max_text_chars = max_text_chars
        self.default_lang = default_lang
        self._ctx: ChannelContext | None = None

    @property
    def ctx(self) -> ChannelContext:
        """The running context; set by start()."""
        if self._ctx is None:
            raise RuntimeError("web chat channel not started")
        return self._ctx

    def routes(self) -> Sequence[web.AbstractRouteDef]:
        """The /api/chat routes."""
        return [
            web.post("/api/chat/sessions", self.create_session),
            web.get("/api/chat/sessions/{id}", self.get_session),
            web.post("/api/chat/sessions/{id}/messages", self.post_message),
            web.get("/api/chat/sessions/{id}/ws", self.websocket),
        ]

    async def start(self, ctx: ChannelContext) -> None:
        """Keep the context."""
        self._ctx = ctx

    async def close(self) -> None:
        """Nothing to release: sockets close with the app."""

    async def send(self, address: str, messages: Sequence[Outbound]) -> None:
        """Push late replies to every open page of this session (in any process)."""
        for m in messages:
            await self.ctx.bus.publish(child_topic(address), {"type": "reply", **m.to_dict()})

    async def show_mode(self, address: str, mode: str) -> None:
        """Push who is answering now (bot, waiting, human, closed) to the session's pages."""
        await self.ctx.bus.publish(child_topic(address), {"type": "mode", "mode": mode})

    async def open_session(
        self, *, script: str | None = None, lang: str | None = None
    ) -> dict[str, Any]:
        """Create an anonymous session; also used by the WeChat login route."""
        session_id = uuid.uuid4().hex
        token = secrets.token_urlsafe(32)
        start = self.ctx.services["start_conversation"]
        _conv, replies = await start(
            self.name,
            session_id,
            script_id=script,
            lang=lang or self.default_lang,
            token=token,
            conversation_id=session_id,
        )
        return {
            "session_id": session_id,
            "token": token,
            "replies": [r.to_dict() for r in replies],
        }

    async def create_session(self, request: web.Request) -> web.Response:
        """POST /api/chat/sessions: a new anonymous conversation and its greeting."""
        body = await json_object(request, required=False)
        lang = body.get("lang", self.default_lang)
        if lang not in LANGS:
            raise ApiError(400, "invalid_lang", f"'lang' must be one of {', '.join(LANGS)}.")
        script = body.get("script", "intake")
        if not isinstance(script, str) or not SCRIPT_ID.match(script):
            raise ApiError(400, "invalid_script", "'script' must be a script id like 'intake'.")
        try:
            session = await self.open_session(script=script, lang=lang)
        except LookupError as exc:
            raise ApiError(404, "unknown_script", f"No script named {script!r}.") from exc
        return web.json_response(session, status=201)

    async def _authorise(self, request: web.Request, token: str) -> Any:
        store = self.ctx.services["store"]
        try:
            return await store.conversation_for_token(request.match_info["id"], token)
        except LookupError as exc:
            raise ApiError(404, "unknown_session", "No such chat session.") from exc
        except PermissionError as exc:
            raise ApiError(401, "unauthorized", "The session token is not valid.") from exc

    async def get_session(self, request: web.Request) -> web.Response:
        """GET /api/chat/sessions/{id}: the mode and the conversation so far, to resume a page."""
        conv = await self._authorise(request, bearer_token(request))
        transcript = await self.ctx.services["store"].transcript(conv.id)
        return web.json_response(
            {
                "session_id": conv.id,
                "mode": conv.mode,
                "lang": conv.script_lang,
                "messages": [
                    {
                        "from": "child" if m.direction == "in" else m.sender.split(":", 1)[0],
                        "text": m.text,
                        "options": list(m.options),
                    }
                    for m in transcript
                ],
            }
        )

    async def post_message(self, request: web.Request) -> web.Response:
        """POST /api/chat/sessions/{id}/messages: store, assess, answer."""
        token = bearer_token(request)
        body = await json_object(request)
        text = check_text(body.get("text"), self.max_text_chars)
        client_id = body.get("client_message_id")
        if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
            raise ApiError(
                400,
                "invalid_client_message_id",
                "'client_message_id' must be 1-64 letters, digits or _.:- (unique per message).",
            )
        conv = await self._authorise(request, token)
        if conv.mode == "closed":
            raise ApiError(409, "conversation_closed", "This chat has ended; start a new one.")
        inbound = Inbound(
            channel=self.name,
            address=conv.id,
            message_id=f"{conv.id}:{client_id}",
            text=text,
            received_at=datetime.now(UTC),
        )
        receiver = self.ctx.receiver
        accepted = await receiver.accept(inbound, conversation=conv)
        try:
            replies, mode = await receiver.respond(accepted)
        except Exception:
            # Stored but not answered: never silence. The fallback gives the emergency numbers;
            # the recovery sweep (or the page's retry with the same id) answers it properly.
            log.exception("turn failed for web chat %s; sending the fallback", conv.id)
            notice = self.ctx.services["notice"]
            replies, mode = [Outbound(notice("fallback", conv.script_lang))], conv.mode
        return web.json_response({"replies": [r.to_dict() for r in replies], "mode": mode})

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """GET /api/chat/sessions/{id}/ws?token=...: late replies pushed as they come."""
        token = request.query.get("token", "")
        if not token:
            raise ApiError(401, "unauthorized", "Pass the session token as ?token=.")
        conv = await self._authorise(request, token)
        ws = web.WebSocketResponse(heartbeat=25)
        await ws.prepare(request)
        async with self.ctx.bus.subscribe(child_topic(conv.id)) as sub:

            async def forward() -> None:
                async for event in sub:
                    if event.topic == child_topic(conv.id):
                        await ws.send_json(event.data)
                    else:  # the bus may have dropped events: the page reloads the session
                        await ws.send_json({"type": event.topic})

            pump = asyncio.create_task(forward())
            try:
                async for msg in ws:  # the page only listens; reading keeps pings answered
                    if msg.type == WSMsgType.ERROR:
                        break
            finally:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump
        return ws
