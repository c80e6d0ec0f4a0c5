"""WeChat API calls through wechatpy: a shared stable_token cache and one-retry error policy."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from wechatpy import WeChatClient
from wechatpy.client.api.base import BaseWeChatAPI
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage

log = logging.getLogger(__name__)
T = TypeVar("T")

REAL_HOST = "https://api.weixin.qq.com/"
TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # refresh the token once, retry once
BUSY_ERRORS = frozenset({-1, 45009})  # back off and try again
WINDOW_ERRORS = frozenset({45015, 45047})  # the reply window is over or spent: never retry
REFRESH_MARGIN = 60  # seconds before expiry a cached token is no longer handed out
LOCK_TTL = timedelta(seconds=15)
BACKOFF = (0.5, 2.0)


class KV(Protocol):
    """The shared key-value store (storage.store.Store) as the token cache sees it."""

    async def kv_add(self, key: str, value: str, ttl: timedelta) -> bool:
        """SET NX EX."""
        ...

    async def kv_get(self, key: str) -> str | None:
        """Value of an unexpired key."""
        ...

    async def kv_set(self, key: str, value: str, ttl: timedelta | None) -> None:
        """SET."""
        ...


class WeChatAPIError(Exception):
    """A WeChat API call failed; errcode is None for transport errors."""

    def __init__(self, errcode: int | None, errmsg: str) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class _CallToken(SessionStorage):  # type: ignore[misc]
    """wechatpy's token storage, per worker thread: each call carries the token we give it."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, key: str, default: Any = None) -> Any:
        """The token set for the current call."""
        return getattr(self._local, "token", default)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Set the token of the current call."""
        self._local.token = value

    def delete(self, key: str) -> None:
        """Forget the token of the current call."""
        self._local.token = None


class QingtingClient(WeChatClient):  # type: ignore[misc]
    """WeChatClient on a configurable host whose tokens come from TokenCache, never itself."""

    API_BASE = REAL_HOST

    def fetch_access_token(self) -> dict[str, Any]:
        """Never called: every call is given its token (wechatpy's own cache is per process)."""
        raise RuntimeError("access tokens are managed by TokenCache")

    def fetch_stable_token(self, force_refresh: bool = False) -> dict[str, Any]:
        """POST cgi-bin/stable_token (wechatpy has no helper for it)."""
        result: dict[str, Any] = self.post(
            self.API_BASE + "cgi-bin/stable_token",
            params={"access_token": None},  # a present key stops wechatpy adding a token
            data={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret,
                "force_refresh": force_refresh,
            },
        )
        return result


def make_client(base_url: str, appid: str, secret: str, *, timeout: float = 5) -> QingtingClient:
    """A blocking wechatpy client on base_url with auto_retry off (it recurses on 40001)."""
    base = base_url.rstrip("/") + "/"
    cls = type(
        "BoundQingtingClient",
        (QingtingClient,),
        {"API_BASE": base, "API_BASE_URL": base + "cgi-bin/"},
    )
    client = cls(appid, secret, session=_CallToken(), timeout=timeout, auto_retry=False)
    # Sub-APIs with their own base (wxa for jscode2session) would still hit the real host.
    for api in vars(client).values():
        own = getattr(api, "API_BASE_URL", None) if isinstance(api, BaseWeChatAPI) else None
        if isinstance(own, str) and own.startswith(REAL_HOST):
            api.API_BASE_URL = base + own[len(REAL_HOST) :]
    return client


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run one blocking wechatpy call in a worker thread, mapping its errors."""
    try:
        return await asyncio.to_thread(fn, *args)
    except WeChatClientException as exc:
        code = int(exc.errcode) if exc.errcode is not None else None
        raise WeChatAPIError(code, str(exc.errmsg)) from exc
    except OSError as exc:  # requests' ConnectionError/Timeout are OSErrors
        # requests puts the whole URL in its message, query string (secret, access_token,
        # js_code) included: keep only what is safe to log.
        raise WeChatAPIError(None, f"{type(exc).__name__}: {redact(str(exc))}") from exc


SECRET_PARAMS = re.compile(r"((?:secret|access_token|js_code|appid)=)[^&\s'\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """The text with every secret query parameter's value blanked."""
    return SECRET_PARAMS.sub(r"\1***", text)


class TokenCache:
    """The access token, cached in process and shared through the store; one refresher."""

    def __init__(self, client: QingtingClient, kv: KV) -> None:
        self.client = client
        self.kv = kv
        self.key = f"wechat:token:{client.appid}"
        self.lock_key = f"wechat:token-lock:{client.appid}"
        self._token: str | None = None
        self._expires_at = 0.0
        self._local = asyncio.Lock()
        self.fetches = 0  # stable_token calls made by this process

    async def get(self) -> str:
        """A valid token: memory, then the shared store, then WeChat."""
        if self._token and time.time() < self._expires_at:
            return self._token
        async with self._local:
            if self._token and time.time() < self._expires_at:
                return self._token
            return await self._load_or_fetch(stale=None)

    async def refresh(self, stale: str) -> str:
        """A token other than stale (after 40001/42001)."""
        async with self._local:
            if self._token and self._token != stale and time.time() < self._expires_at:
                return self._token
            return await self._load_or_fetch(stale=stale)

    async def _read_shared(self, stale: str | None) -> str | None:
        raw = await self.kv.kv_get(self.key)
        if not raw:
            return None
        try:
            entry = json.loads(raw)
            token, expires_at = str(entry["token"]), float(entry["expires_at"])
        except (ValueError, KeyError, TypeError):
            return None
        if token == stale or time.time() >= expires_at:
            return None
        self._token, self._expires_at = token, expires_at
        return token

    async def _load_or_fetch(self, stale: str | None) -> str:
        owner = secrets.token_hex(8)
        for _ in range(40):  # about 10 s waiting for another process's refresh
            shared = await self._read_shared(stale)
            if shared:
                return shared
            if await self.kv.kv_add(self.lock_key, owner, LOCK_TTL):
                try:
                    shared = await self._read_shared(stale)  # refreshed while we took the lock
                    return shared or await self._fetch(stale)
                finally:
                    # No kv_delete in the store: expire the lock a millisecond from now.
                    await self.kv.kv_set(self.lock_key, "released", timedelta(milliseconds=1))
            await asyncio.sleep(0.25)
        log.warning("WeChat token lock held for too long; fetching without it")
        return await self._fetch(stale)

    async def _fetch(self, stale: str | None) -> str:
        result = await _blocking(self.client.fetch_stable_token, False)
        self.fetches += 1
        if stale is not None and result.get("access_token") == stale:
            # stable_token hands back the same token until near expiry; this one is dead.
            log.warning("WeChat stable_token returned a rejected token; forcing a refresh")
            result = await _blocking(self.client.fetch_stable_token, True)
            self.fetches += 1
        token = str(result["access_token"])
        expires_in = int(result.get("expires_in", 7200))
        expires_at = time.time() + max(expires_in - REFRESH_MARGIN, 1)
        self._token, self._expires_at = token, expires_at
        ttl = timedelta(seconds=max(expires_in - REFRESH_MARGIN, 1))
        await self.kv.kv_set(self.key, json.dumps({"token": token, "expires_at": expires_at}), ttl)
        return token


class WeChatAPI:
    """The calls Qingting makes: CS text, typing, jscode2session; async, one token retry."""

    def __init__(self, client: QingtingClient, tokens: TokenCache) -> None:
        self.client = client
        self.tokens = tokens

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) with a token; on 40001/40014/42001 refresh once and retry once."""
        token = await self.tokens.get()
        try:
            return await _blocking(self._with_token, token, fn, *args)
        except WeChatAPIError as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            log.info("WeChat token rejected (%s); refreshing once", exc.errcode)
        token = await self.tokens.refresh(token)
        return await _blocking(self._with_token, token, fn, *args)

    def _with_token(self, token: str, fn: Callable[..., T], *args: Any) -> T:
        self.client.session.set(self.client.access_token_key, token)
        try:
            return fn(*args)
        finally:
            self.client.session.delete(self.client.access_token_key)

    async def send_text(self, openid: str, text: str) -> None:
        """One CS text message; busy errors are retried with back-off, others raised."""
        for delay in (*BACKOFF, None):
            try:
                await self.call(self.client.message.send_text, openid, text)
                return
            except WeChatAPIError as exc:
                if delay is None or not (exc.errcode in BUSY_ERRORS or exc.errcode is None):
                    raise
                log.warning("WeChat send busy (%s); retrying in %.1fs", exc.errcode, delay)
                await asyncio.sleep(delay)

    async def typing(self, openid: str, command: str = "Typing") -> bool:
        """Show or cancel the typing indicator; False when WeChat refused (never raises)."""
        try:
            await self.call(self._typing, openid, command)
            return True
        except WeChatAPIError as exc:
            log.debug("WeChat typing %s refused: %s", command, exc)
            return False

    def _typing(self, openid: str, command: str) -> Any:
        return self.client.post(
            "message/custom/typing", data={"touser": openid, "command": command}
        )

    async def code_to_session(self, code: str) -> dict[str, Any]:
        """jscode2session for a wx.login code: {openid, session_key[, unionid]}."""
        result: dict[str, Any] = await self.call(self.client.wxa.code_to_session, code)
        return result
