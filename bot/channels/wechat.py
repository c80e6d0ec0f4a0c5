"""The WeChat mini-program customer-service channel: callback, replies, mini-program login."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.channels.base import ChannelContext, Inbound, Outbound, QuickReply, log_failure
from bot.channels.wechat_api import (
    WINDOW_ERRORS,
    TokenCache,
    WeChatAPI,
    WeChatAPIError,
    make_client,
)
from bot.channels.wechat_parse import (
    BadPush,
    Push,
    decrypt,
    detect_format,
    load_envelope,
    parse_push,
    signature_ok,
)
from bot.channels.wechat_text import combine, split_text
from bot.config import WeChatSettings
from bot.errors import ApiError, json_object

log = logging.getLogger(__name__)

CALLBACK = "/wechat/callback"
LOGIN = "/api/wechat/login"
EVENT_TTL = timedelta(minutes=10)
ENTER_EVENT = "user_enter_tempsession"
LANGS = ("zh-CN", "zh-TW", "en")
REASONS = {45015: "reply_window_closed", 45047: "reply_quota_used"}
LOGIN_ERRORS = {
    40029: (401, "invalid_code", "The login code is invalid, expired or already used."),
    40163: (401, "invalid_code", "The login code was already used."),
    45011: (429, "rate_limited", "Too many logins; try again in a minute."),
    40226: (403, "blocked", "WeChat refused this account."),
}


def _ok() -> web.Response:
    return web.Response(text="success", content_type="text/plain")


MAX_CLOCK_SKEW = 300  # seconds either way; WeChat's retries arrive within ~15 s
CLOSE_GRACE = 10.0  # seconds shutdown waits for replies being sent before cancelling them


def fresh(timestamp: str, now: float | None = None) -> bool:
    """True when a push's timestamp is within a few minutes of our clock."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    return abs((time.time() if now is None else now) - ts) <= MAX_CLOCK_SKEW


def _error(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


class WeChatChannel:
    """Channel adapter for WeChat mini-program customer-service messages (小程序客服消息)."""

    name = "wechat"

    def __init__(self, settings: WeChatSettings, *, typing: bool = True) -> None:
        self.settings = settings
        self.typing = typing
        self.default_lang = "zh-CN"
        self._ctx: ChannelContext | None = None
        self._api: WeChatAPI | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ lifecycle
    @property
    def ctx(self) -> ChannelContext:
        """The running context; set by start()."""
        if self._ctx is None:
            raise RuntimeError("WeChat channel not started")
        return self._ctx

    @property
    def api(self) -> WeChatAPI:
        """The WeChat API client; set by start()."""
        if self._api is None:
            raise RuntimeError("WeChat channel not started")
        return self._api

    def routes(self) -> Sequence[web.AbstractRouteDef]:
        """The push callback and the mini-program login route."""
        return [
            web.get(CALLBACK, self.callback),
            web.post(CALLBACK, self.callback),
            web.post(LOGIN, self.login),
        ]

    async def start(self, ctx: ChannelContext) -> None:
        """Keep the context and build the wechatpy client with its shared token cache."""
        self._ctx = ctx
        app_settings = ctx.services.get("settings")
        self.default_lang = getattr(app_settings, "default_lang", None) or "zh-CN"
        s = self.settings
        client = make_client(s.api_base, s.appid, s.secret)
        self._api = WeChatAPI(client, TokenCache(client, ctx.services["store"]))
        log.info("WeChat channel on for appid %s, %s mode, API %s", s.appid, s.mode, s.api_base)

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Let the replies still being worked on finish (a cancelled one may have committed a
        turn whose replies would then never be sent); cancel what is left after grace."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)  # keep a reference: the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(log_failure)
        return task

    async def idle(self) -> None:
        """Wait until every background reply has finished (for tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ callback
    async def callback(self, request: web.Request) -> web.StreamResponse:
        """GET: URL check. POST: verify, parse, store, answer `success`, reply in background."""
        q = request.query
        ts, nonce = q.get("timestamp", ""), q.get("nonce", "")
        if not signature_ok(q.get("signature", ""), self.settings.token, ts, nonce):
            log.warning("WeChat callback: bad signature from %s; refused", request.remote)
            return _error(403, "forbidden")
        if not fresh(ts):
            # The signature covers no body: a captured callback URL must not be replayable.
            log.warning("WeChat callback: stale timestamp from %s; refused", request.remote)
            return _error(403, "forbidden")
        if request.method == "GET":
            echostr = q.get("echostr")
            if echostr is None:
                return _error(400, "echostr missing")
            return web.Response(text=echostr, content_type="text/plain")
        raw = await request.read()  # capped by the app's client_max_size (413 above it)
        try:
            push = self._decode(raw, q)
        except PermissionError as exc:
            log.warning("WeChat callback from %s refused: %s", request.remote, exc)
            return _error(403, "forbidden")
        except BadPush as exc:
            log.warning("WeChat callback: malformed push refused (%s)", exc)
            return _error(400, "bad request")
        try:
            # Shielded: if WeChat hangs up, storing and scheduling the answer still completes
            # (a retry then finds the message stored and must not be the one left unanswered).
            await asyncio.shield(self._spawn(self._receive(push)))
        except Exception:
            # Storage failed: not acknowledged, so WeChat delivers it again.
            log.exception("WeChat callback: could not store a push")
            return _error(503, "try again")
        return _ok()

    def _decode(self, raw: bytes, q: Any) -> Push:
        """The push in this body; PermissionError for a bad msg_signature, BadPush otherwise."""
        envelope, text, fmt = load_envelope(raw)
        if q.get("encrypt_type", "").lower() == "aes" or (
            "Encrypt" in envelope and "MsgType" not in envelope
        ):
            if not self.settings.aes_key:
                raise BadPush("encrypted push but no AES key configured")
            encrypt = envelope.get("Encrypt")
            if not isinstance(encrypt, str):
                raise BadPush("no Encrypt field")
            ts, nonce = q.get("timestamp", ""), q.get("nonce", "")
            if not signature_ok(
                q.get("msg_signature", ""), self.settings.token, ts, nonce, encrypt
            ):
                raise PermissionError("bad msg_signature")
            text = decrypt(envelope, self.settings.aes_key, self.settings.appid)
            fmt = detect_format(text)
        elif self.settings.encrypted_only:
            raise PermissionError(f"plaintext push refused in {self.settings.mode} mode")
        return parse_push(text, fmt)

    async def _receive(self, push: Push) -> None:
        """Store the push (idempotently) and schedule its answer."""
        store = self.ctx.services["store"]
        if push.msg_type == "event":
            if push.event != ENTER_EVENT:
                log.info("WeChat event %r ignored", push.event)
                return
            key = f"wechat:evt:{push.dedup_key}"
            if not await store.kv_add(key, "1", EVENT_TTL):
                return  # WeChat's retry of an event already handled
            try:
                conv = await store.find_open_conversation(self.name, push.openid)
                if conv is not None and conv.flags.get("greeted"):
                    await store.add_event(conv.id, "wechat.session_entered", {})
                    self._spawn(self._resume(push.openid, conv.id, conv.mode))
                    return
                await self._accept_and_answer(push)
            except Exception:
                # Not handled (the 503 asks WeChat to resend): the resend must not be taken
                # for a duplicate, or the child who just opened the chat hears nothing.
                await store.kv_set(key, "", timedelta(milliseconds=1))
                raise
            return
        if push.msg_type == "other":
            log.info("WeChat message type not handled; acknowledged")
            return
        await self._accept_and_answer(push)

    async def _accept_and_answer(self, push: Push) -> None:
        accepted = await self.ctx.receiver.accept(self._inbound(push))
        if accepted.is_new:
            self._spawn(self._answer(push.openid, accepted))
        # else: a retry; the first delivery's task answers (or recovery after a crash)

    def _inbound(self, push: Push) -> Inbound:
        if push.msg_type == "text":
            kind, text = "text", push.content
        elif push.msg_type == "image":
            # Recorded, not fetched: images are not downloaded unless that is built and allowed.
            kind, text = "image", self.ctx.services["notice"]("image_received", self.default_lang)
        elif push.msg_type == "miniprogrampage":
            kind, text = "card", f"[卡片] {push.content}".strip()
        else:
            kind, text = "event", ""
        return Inbound(
            channel=self.name,
            address=push.openid,
            message_id=push.dedup_key,
            text=text,
            received_at=datetime.now(UTC),
            kind=kind,
        )

    async def _answer(self, openid: str, accepted: Any) -> None:
        """Run the turn with the typing indicator on, then send the replies as one message."""
        typing = self._spawn(self.api.typing(openid)) if self.typing else None
        try:
            replies = await self.ctx.receiver.process(accepted)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The message is stored; never leave the child in silence.
            log.exception("WeChat: turn failed for conversation %s", accepted.conversation_id)
            replies = [Outbound(self.ctx.services["notice"]("fallback", self.default_lang))]
        if typing is not None:
            await asyncio.gather(typing, return_exceptions=True)  # typing first, then the text
        with contextlib.suppress(WeChatAPIError):  # recorded and logged by _deliver
            await self._deliver(openid, accepted.conversation_id, replies)

    async def _resume(self, openid: str, conversation_id: str, mode: str) -> None:
        """The child came back through the contact button: repeat what the bot last said."""
        if mode == "human":
            return  # a volunteer is talking; they see the event and carry on
        transcript = await self.ctx.services["store"].transcript(conversation_id)
        tail: list[Outbound] = []
        for m in reversed(transcript):
            if m.direction == "in":
                break
            if m.sender in ("bot", "system"):
                options = tuple(QuickReply(o["label"], o["value"]) for o in m.options)
                tail.insert(0, Outbound(m.text, options))
        if tail:
            with contextlib.suppress(WeChatAPIError):  # recorded and logged by _deliver
                await self._deliver(openid, conversation_id, tail)

    # ------------------------------------------------------------------ sending
    async def send(self, address: str, messages: Sequence[Outbound]) -> None:
        """Deliver messages to an openid as one combined text (split only if too long).

        Raises WeChatAPIError when WeChat refused; the failure is already recorded on the
        conversation (flags.wechat_undelivered) and as an event.
        """
        conv = await self.ctx.services["store"].find_open_conversation(self.name, address)
        await self._deliver(address, conv.id if conv is not None else None, messages)

    async def _deliver(
        self, openid: str, conversation_id: str | None, messages: Sequence[Outbound]
    ) -> None:
        chunks = split_text(combine(messages))
        for i, chunk in enumerate(chunks):
            try:
                await self.api.send_text(openid, chunk)
            except WeChatAPIError as exc:
                await self._record_undelivered(conversation_id, exc, len(chunks) - i)
                raise
        if chunks and conversation_id is not None:
            await self._clear_blocked(conversation_id)

    async def _record_undelivered(
        self, conversation_id: str | None, exc: WeChatAPIError, pending: int
    ) -> None:
        """Put a refused send on the conversation (flags and an event) so a volunteer sees it."""
        reason = REASONS.get(exc.errcode or 0, "send_failed")
        log.warning(
            "WeChat: %d message(s) for conversation %s not delivered: %s (%s)",
            pending,
            conversation_id,
            reason,
            exc,
        )
        if conversation_id is None:
            return
        store = self.ctx.services["store"]
        entry = {
            "errcode": exc.errcode,
            "reason": reason,
            "pending": pending,
            "at": datetime.now(UTC).isoformat(),
        }
        for _ in range(5):  # compare-and-set on updated_at: never overwrite a turn's flags
            conv = await store.get_conversation(conversation_id)
            if conv is None:
                break
            flags = dict(conv.flags)
            before = flags.get("wechat_undelivered") or {}
            total = int(before.get("total", 0)) if isinstance(before, dict) else 0
            flags["wechat_undelivered"] = {**entry, "total": total + pending}
            if exc.errcode in WINDOW_ERRORS:
                flags["wechat_reply_blocked"] = reason
            if await store.update_conversation_if(
                conversation_id, {"updated_at": conv.updated_at}, flags=flags
            ):
                break
        else:
            log.error("WeChat: could not record undelivered messages on %s", conversation_id)
        await store.add_event(conversation_id, "wechat.undelivered", entry)

    async def _clear_blocked(self, conversation_id: str) -> None:
        """A send went through: the reply window is open again."""
        store = self.ctx.services["store"]
        for _ in range(5):
            conv = await store.get_conversation(conversation_id)
            if conv is None or "wechat_reply_blocked" not in conv.flags:
                return
            flags = {k: v for k, v in conv.flags.items() if k != "wechat_reply_blocked"}
            if await store.update_conversation_if(
                conversation_id, {"updated_at": conv.updated_at}, flags=flags
            ):
                return

    # ------------------------------------------------------------------ login
    async def login(self, request: web.Request) -> web.Response:
        """POST /api/wechat/login {"code"}: a web chat session for the mini-program's own page."""
        body = await json_object(request)
        code = body.get("code")
        if not isinstance(code, str) or not code.strip() or len(code) > 256:
            raise ApiError(400, "invalid_code", "'code' must be the code from wx.login().")
        lang = body.get("lang")
        if lang is not None and lang not in LANGS:
            raise ApiError(400, "invalid_lang", f"'lang' must be one of {', '.join(LANGS)}.")
        try:
            result = await self.api.code_to_session(code.strip())
        except WeChatAPIError as exc:
            known = LOGIN_ERRORS.get(exc.errcode or 0)
            if known is not None:
                raise ApiError(*known) from exc
            log.warning("WeChat login failed: %s", exc)
            raise ApiError(502, "wechat_unavailable", "WeChat did not answer; try again.") from exc
        if not result.get("openid"):
            raise ApiError(502, "wechat_unavailable", "WeChat did not confirm the login.")
        # The openid and session_key stay here: the web session is anonymous and not linked.
        open_session = self.ctx.services["open_web_session"]
        session = await open_session(lang=lang or self.default_lang)
        return web.json_response(session, status=201)
