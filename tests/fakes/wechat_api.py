"""A faithful fake of WeChat's mini-program customer-service API (CHANNELS.md 1.2 / 1.3).

A real aiohttp server on 127.0.0.1 with a fake clock. Every answer is HTTP 200 JSON, errors
included, with the real error codes and an `rid:` suffix in errmsg like the real host.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Real errmsg texts where known; the fake appends " rid: …" to every error like WeChat does.
ERRMSG: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40029: "invalid code",
    40097: "invalid args",
    40125: "invalid appsecret",
    40226: "invalid user, high risk user",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    42001: "access_token expired",
    44002: "empty post data",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit, mustslower retry next minute",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    45072: "command field invalid",
    45080: "has not sent message to user in 30 seconds",
    45081: "already in typing state",
    47001: "data format error",
    61010: "user access record is expired",
}

TOKEN_PATH = "/cgi-bin/token"
STABLE_TOKEN_PATH = "/cgi-bin/stable_token"
SEND_PATH = "/cgi-bin/message/custom/send"
TYPING_PATH = "/cgi-bin/message/custom/typing"
JSCODE_PATH = "/sns/jscode2session"
SEC_CHECK_PATH = "/wxa/msg_sec_check"

WINDOW_SECONDS = 48 * 3600  # a user message opens a 48 h reply window…
WINDOW_QUOTA = 5  # …allowing 5 sends, reset by each new user message
ENTER_SECONDS = 60  # entering the CS session allows 2 sends within 1 min
ENTER_QUOTA = 2
TYPING_NEEDS_INTERACTION = 30  # typing needs a user interaction in the last 30 s
TYPING_LASTS = 15
SEC_CHECK_ACTIVE = 2 * 3600  # msg_sec_check needs the openid active in the last 2 h
JS_CODE_TTL = 300  # wx.login codes live 5 minutes
OLD_TOKEN_GRACE = 300  # /cgi-bin/token keeps the previous token alive ~5 min
STABLE_RENEW_BEFORE = 300  # stable_token renews within 5 min of expiry
DAY = 86400


def _rid() -> str:
    return f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def error_body(errcode: int, errmsg: str | None = None) -> dict[str, Any]:
    """Build a WeChat-style error body with the `rid:` suffix the real host adds."""
    return {"errcode": errcode, "errmsg": f"{errmsg or ERRMSG.get(errcode, 'error')} rid: {_rid()}"}


OK: dict[str, Any] = {"errcode": 0, "errmsg": "ok"}


@dataclass
class RecordedRequest:
    """One request the fake received, with its decoded body and the answer it gave."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # decoded JSON, or the raw text when it was not JSON, or None when empty
    response: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0  # fake-clock time


@dataclass
class _Token:
    value: str
    kind: str  # "token" or "stable"
    expires_at: float
    revoked_at: float | None = None


@dataclass
class _User:
    window_until: float = 0.0
    window_left: int = 0
    enter_until: float = 0.0
    enter_left: int = 0
    last_interaction: float | None = None
    typing_until: float = 0.0


@dataclass
class _Failure:
    errcode: int | None
    errmsg: str | None
    http_status: int
    delay: float
    times: int


class FakeWeChatAPI:
    """Fake api.weixin.qq.com for one mini-program: tokens, CS send/typing, login, content check."""

    def __init__(
        self,
        appid: str = "wxfake0000000000a",
        secret: str = "fake-app-secret-0000000000000000",
        *,
        token_ttl: int = 7200,
        old_token_grace: int = OLD_TOKEN_GRACE,
        risky_word: str = "RISKYWORD",
        review_word: str = "REVIEWWORD",
        max_text_bytes: int = 2048,
        token_daily_limit: int = 2000,
        stable_force_daily_limit: int = 20,
    ) -> None:
        self.appid = appid
        self.secret = secret
        self.token_ttl = token_ttl
        self.old_token_grace = old_token_grace
        self.risky_word = risky_word
        self.review_word = review_word
        # 45002 "content size out of limit": 2048 bytes is the community-measured text limit.
        self.max_text_bytes = max_text_bytes
        self.token_daily_limit = token_daily_limit
        self.stable_force_daily_limit = stable_force_daily_limit

        self.sent: list[dict[str, Any]] = []  # custom/send bodies that were delivered
        self.requests: list[RecordedRequest] = []
        self.typing_events: list[tuple[str, str]] = []  # (openid, command) accepted

        self._offset = 0.0
        self._tokens: dict[str, _Token] = {}
        self._stable: _Token | None = None
        self._users: dict[str, _User] = {}
        self._codes: dict[str, tuple[str, float, str | None]] = {}  # code -> openid, at, unionid
        self._session_keys: dict[str, str] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._daily: dict[tuple[str, int], int] = {}
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start the server on a random free port of 127.0.0.1."""
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get(TOKEN_PATH, self._h_token)
        app.router.add_post(STABLE_TOKEN_PATH, self._h_stable_token)
        app.router.add_post(SEND_PATH, self._h_send)
        app.router.add_post(TYPING_PATH, self._h_typing)
        app.router.add_get(JSCODE_PATH, self._h_jscode)
        app.router.add_post(SEC_CHECK_PATH, self._h_sec_check)
        self._changed = asyncio.Condition()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop the server."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeWeChatAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """Base URL like the real host `https://api.weixin.qq.com` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- fake clock
    def now(self) -> float:
        """The fake clock: wall time plus everything passed to advance()."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake clock forward (tokens, windows, codes and typing all follow it)."""
        self._offset += seconds

    # ---------------------------------------------------------------- drivers
    def user_message(self, openid: str) -> None:
        """A user sent a message: (re)open the 48 h window with a fresh quota of 5."""
        u = self._users.setdefault(openid, _User())
        now = self.now()
        u.window_until, u.window_left = now + WINDOW_SECONDS, WINDOW_QUOTA
        u.last_interaction = now

    def user_enter_session(self, openid: str) -> None:
        """A user entered the CS session (user_enter_tempsession): 2 sends within 1 min."""
        u = self._users.setdefault(openid, _User())
        now = self.now()
        u.enter_until, u.enter_left = now + ENTER_SECONDS, ENTER_QUOTA
        u.last_interaction = now

    def add_user(self, openid: str) -> None:
        """Make an openid known to the app without opening any reply window."""
        self._users.setdefault(openid, _User())

    def issue_js_code(self, openid: str, unionid: str | None = None) -> str:
        """Register a single-use wx.login code for openid (valid 5 min) and return it."""
        self.add_user(openid)
        code = secrets.token_hex(16)
        self._codes[code] = (openid, self.now(), unionid)
        return code

    def session_key(self, openid: str) -> str | None:
        """The last session_key handed out for openid by jscode2session."""
        return self._session_keys.get(openid)

    def fail_next(
        self,
        path: str,
        errcode: int | None = -1,
        *,
        errmsg: str | None = None,
        times: int = 1,
        http_status: int = 200,
        delay: float = 0.0,
    ) -> None:
        """Make the next `times` calls to path fail with errcode (or http_status) after delay.

        path may be given with or without the leading slash ("message/custom/send" works).
        The failed call has no side effect (nothing is delivered, no quota is spent).
        """
        key = path if path.startswith("/") else "/" + path
        if not key.startswith(("/cgi-bin/", "/sns/", "/wxa/")):
            key = "/cgi-bin" + key
        self._failures.setdefault(key, []).append(
            _Failure(errcode, errmsg, http_status, delay, times)
        )

    def revoke_tokens(self) -> None:
        """Invalidate every issued token at once (the next call with any of them gets 40001)."""
        now = self.now()
        for t in self._tokens.values():
            t.revoked_at = now
        self._stable = None

    # ---------------------------------------------------------------- inspection
    def messages_to(self, openid: str) -> list[str]:
        """Text contents delivered to openid, in order."""
        return [
            b["text"]["content"]
            for b in self.sent
            if b.get("touser") == openid and b.get("msgtype") == "text"
        ]

    def bodies_to(self, openid: str) -> list[dict[str, Any]]:
        """Every delivered custom/send body for openid (all message types)."""
        return [b for b in self.sent if b.get("touser") == openid]

    def count(self, path: str) -> int:
        """How many requests reached path (failed ones included)."""
        return sum(1 for r in self.requests if r.path == path)

    # The brief fixes this signature, hence the timeout parameter.
    async def wait_for_messages(
        self,
        openid: str,
        n: int,
        timeout: float = 5,
    ) -> list[str]:
        """Wait until at least n texts were delivered to openid and return them all."""
        assert self._changed is not None, "start the fake first"
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: len(self.messages_to(openid)) >= n)
        except TimeoutError:
            got = self.messages_to(openid)
            raise TimeoutError(
                f"{openid!r} got {len(got)} of {n} messages within {timeout}s: {got!r}"
            ) from None
        return self.messages_to(openid)

    # ---------------------------------------------------------------- plumbing
    async def _read(self, request: web.Request) -> tuple[Any, bool]:
        raw = await request.read()
        if not raw:
            return None, True
        try:
            return json.loads(raw.decode("utf-8")), True
        except (UnicodeDecodeError, ValueError):
            return raw.decode("utf-8", "replace"), False

    async def _answer(self, request: web.Request, handler: Any) -> web.Response:
        body, is_json = await self._read(request)
        rec = RecordedRequest(
            request.method, request.path, dict(request.query), body, at=self.now()
        )
        self.requests.append(rec)
        fail = self._take_failure(request.path)
        if fail is not None:
            if fail.delay:
                await asyncio.sleep(fail.delay)
            if fail.http_status != 200:
                rec.response = {"http_status": fail.http_status}
                return web.Response(status=fail.http_status, text="injected failure")
            result = error_body(fail.errcode if fail.errcode is not None else -1, fail.errmsg)
        elif not is_json or (body is not None and not isinstance(body, dict)):
            result = error_body(47001)
        else:
            result = handler(request.query, body or {})
        rec.response = result
        # dumps with ensure_ascii=False like the real host (UTF-8 JSON)
        return web.Response(
            text=json.dumps(result, ensure_ascii=False), content_type="application/json"
        )

    def _take_failure(self, path: str) -> _Failure | None:
        queue = self._failures.get(path)
        if not queue:
            return None
        fail = queue[0]
        fail.times -= 1
        if fail.times <= 0:
            queue.pop(0)
        return fail

    def _quota(self, name: str, limit: int) -> bool:
        """Count one use of a daily quota on the fake clock; False once the limit is passed."""
        key = (name, int(self.now() // DAY))
        self._daily[key] = self._daily.get(key, 0) + 1
        return self._daily[key] <= limit

    def _check_token(self, query: Any) -> dict[str, Any] | None:
        value = query.get("access_token")
        if not value:
            return error_body(41001)
        tok = self._tokens.get(value)
        now = self.now()
        if tok is None or (tok.revoked_at is not None and now >= tok.revoked_at):
            return error_body(40001)
        if now >= tok.expires_at:
            return error_body(42001)
        return None

    def _check_app(self, appid: Any, secret: Any) -> dict[str, Any] | None:
        if not appid:
            return error_body(41002)
        if appid != self.appid:
            return error_body(40013)
        if not secret:
            return error_body(41004)
        if secret != self.secret:
            return error_body(40125)
        return None

    def _new_token(self, kind: str) -> _Token:
        # Real tokens are long opaque strings of [A-Za-z0-9_-].
        tok = _Token(secrets.token_urlsafe(96), kind, self.now() + self.token_ttl)
        self._tokens[tok.value] = tok
        return tok

    def _notify(self) -> None:
        async def _wake() -> None:
            assert self._changed is not None
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(_wake())

    # ---------------------------------------------------------------- handlers
    async def _h_token(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._token)

    def _token(self, q: Any, _body: dict[str, Any]) -> dict[str, Any]:
        err = self._check_app(q.get("appid"), q.get("secret"))
        if err:
            return err
        if q.get("grant_type") != "client_credential":
            return error_body(40002)
        if not self._quota("token", self.token_daily_limit):
            return error_body(45009)
        now = self.now()
        # Each fetch invalidates the previous tokens, which stay usable for a grace period.
        for t in self._tokens.values():
            if t.kind == "token" and t.revoked_at is None:
                t.revoked_at = now + self.old_token_grace
        tok = self._new_token("token")
        return {"access_token": tok.value, "expires_in": self.token_ttl}

    async def _h_stable_token(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._stable_token)

    def _stable_token(self, _q: Any, b: dict[str, Any]) -> dict[str, Any]:
        err = self._check_app(b.get("appid"), b.get("secret"))
        if err:
            return err
        if b.get("grant_type") != "client_credential":
            return error_body(40002)
        now = self.now()
        cur = self._stable
        if b.get("force_refresh") is True:
            if not self._quota("stable_force", self.stable_force_daily_limit):
                return error_body(45009)
            if cur is not None:
                cur.revoked_at = now  # force_refresh kills the previous stable token at once
            cur = None
        if cur is None or cur.expires_at - now <= STABLE_RENEW_BEFORE:
            # Near expiry a new token is issued; the old one lives until its own expiry.
            cur = self._stable = self._new_token("stable")
        return {"access_token": cur.value, "expires_in": int(cur.expires_at - now)}

    async def _h_send(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._send)

    def _send(self, q: Any, b: dict[str, Any]) -> dict[str, Any]:
        err = self._check_token(q)
        if err:
            return err
        if not b:
            return error_body(44002)
        openid = b.get("touser")
        user = self._users.get(openid) if isinstance(openid, str) else None
        if user is None:
            return error_body(40003)
        msgtype = b.get("msgtype")
        err = self._check_send_body(msgtype, b)
        if err:
            return err
        now = self.now()
        # Spend the grant that expires first so the user gets as many replies as WeChat allows.
        if user.enter_until > now and user.enter_left > 0:
            user.enter_left -= 1
        elif user.window_until > now and user.window_left > 0:
            user.window_left -= 1
        elif user.window_until > now or user.enter_until > now:
            return error_body(45047)
        else:
            return error_body(45015)
        user.typing_until = 0.0  # a delivered message ends the typing indicator
        self.sent.append(b)
        self._notify()
        return dict(OK)

    def _check_send_body(self, msgtype: Any, b: dict[str, Any]) -> dict[str, Any] | None:
        required = {
            "text": ("content",),
            "image": ("media_id",),
            "link": ("title", "description", "url", "thumb_url"),
            "miniprogrampage": ("title", "pagepath", "thumb_media_id"),
        }
        if msgtype not in required:
            return error_body(40008)
        part = b.get(msgtype)
        if not isinstance(part, dict) or any(
            not isinstance(part.get(k), str) for k in required[msgtype]
        ):
            return error_body(47001)
        if msgtype == "text":
            content = part["content"]
            if not content:
                return error_body(44004)
            if len(content.encode("utf-8")) > self.max_text_bytes:
                return error_body(45002)
        return None

    async def _h_typing(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._typing)

    def _typing(self, q: Any, b: dict[str, Any]) -> dict[str, Any]:
        err = self._check_token(q)
        if err:
            return err
        openid = b.get("touser")
        user = self._users.get(openid) if isinstance(openid, str) else None
        if user is None:
            return error_body(40003)
        command = b.get("command")
        if command not in ("Typing", "CancelTyping"):
            return error_body(45072)
        now = self.now()
        if command == "Typing":
            last = user.last_interaction
            if last is None or now - last > TYPING_NEEDS_INTERACTION:
                return error_body(45080)
            if user.typing_until > now:
                return error_body(45081)
            user.typing_until = now + TYPING_LASTS
        else:
            user.typing_until = 0.0
        self.typing_events.append((str(openid), str(command)))
        return dict(OK)

    def is_typing(self, openid: str) -> bool:
        """Whether the typing indicator is currently shown to openid."""
        u = self._users.get(openid)
        return u is not None and u.typing_until > self.now()

    async def _h_jscode(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._jscode)

    def _jscode(self, q: Any, _b: dict[str, Any]) -> dict[str, Any]:
        err = self._check_app(q.get("appid"), q.get("secret"))
        if err:
            return err
        if q.get("grant_type") != "authorization_code":
            return error_body(40002)
        code = q.get("js_code")
        if not code:
            return error_body(41008)
        entry = self._codes.pop(code, None)  # single use: a second call finds nothing
        if entry is None or self.now() - entry[1] > JS_CODE_TTL:
            return error_body(40029)
        openid, _at, unionid = entry
        key = secrets.token_urlsafe(18)
        self._session_keys[openid] = key
        # Success answers carry no errcode, like the real host.
        out: dict[str, Any] = {"session_key": key, "openid": openid}
        if unionid:
            out["unionid"] = unionid
        return out

    async def _h_sec_check(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._sec_check)

    def _sec_check(self, q: Any, b: dict[str, Any]) -> dict[str, Any]:
        err = self._check_token(q)
        if err:
            return err
        content = b.get("content")
        if not isinstance(content, str):
            return error_body(47001)
        if b.get("version") != 2:
            # v1 (deprecated): errcode 87014 for risky content, no detail.
            if self.risky_word in content:
                return error_body(87014, "risky content")
            return dict(OK)
        openid = b.get("openid")
        user = self._users.get(openid) if isinstance(openid, str) else None
        if user is None:
            return error_body(40003)
        if b.get("scene") not in (1, 2, 3, 4):
            return error_body(40097)
        if user.last_interaction is None or self.now() - user.last_interaction > SEC_CHECK_ACTIVE:
            return error_body(61010)
        if self.risky_word in content:
            suggest, label, keyword = "risky", 20006, self.risky_word
        elif self.review_word in content:
            suggest, label, keyword = "review", 21000, self.review_word
        else:
            suggest, label, keyword = "pass", 100, ""
        detail = {"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label}
        if keyword:
            detail["keyword"] = keyword
            detail["prob"] = 90
        return {
            **OK,
            "result": {"suggest": suggest, "label": label},
            "detail": [detail],
            "trace_id": secrets.token_hex(12),
        }
