"""Fixtures for the WeChat channel: the app, the fake WeChat API and the pusher on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.app import CHANNELS, PIPELINE, STORE, build_app
from bot.channels.wechat import CALLBACK, WeChatChannel
from bot.config import Settings, WeChatSettings
from storage.store import Store
from storage.views import ConversationView
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.fakes.wechat_pusher import WeChatPusher

TOKEN = "qingting-callback-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 chars like the real setting

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")


def wechat_settings(settings: Settings, api: FakeWeChatAPI, mode: str = "plain") -> Settings:
    """The test settings with the WeChat channel on, pointed at the fake API."""
    return replace(
        settings,
        recover_unanswered=False,
        wechat=WeChatSettings(
            appid=api.appid,
            secret=api.secret,
            token=TOKEN,
            aes_key=AES_KEY,
            api_base=api.base_url,
            mode=mode,  # plain: the rig pushes both ways; safe mode has tests of its own
        ),
    )


@dataclass
class Rig:
    """The running app, the fake WeChat API and a pusher aimed at the app's callback."""

    app: web.Application
    server: TestServer
    api: FakeWeChatAPI
    pusher: WeChatPusher

    @property
    def channel(self) -> WeChatChannel:
        """The app's WeChat channel."""
        channel = self.app[CHANNELS]["wechat"]
        assert isinstance(channel, WeChatChannel)
        return channel

    @property
    def store(self) -> Store:
        """The app's store."""
        return self.app[STORE]

    async def idle(self) -> None:
        """Wait for every background reply to finish."""
        await self.channel.idle()

    async def conversation(self, openid: str) -> ConversationView | None:
        """The open WeChat conversation of openid."""
        return await self.store.find_open_conversation("wechat", openid)

    def slow_down_process(self, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
        """Make the pipeline wait before each turn until the returned release() is called."""
        import asyncio

        pipeline = self.app[PIPELINE]
        original = pipeline.process
        gate = asyncio.Event()

        async def slow(accepted: Any) -> Any:
            await gate.wait()
            return await original(accepted)

        monkeypatch.setattr(pipeline, "process", slow)
        return gate.set


@pytest.fixture
async def api() -> AsyncIterator[FakeWeChatAPI]:
    """The fake WeChat API server."""
    async with FakeWeChatAPI() as fake:
        yield fake


@pytest.fixture
def rig_mode() -> str:
    """The push mode the service is configured for (override with parametrize)."""
    return "plain"


@pytest.fixture
async def rig(
    settings: Settings,
    api: FakeWeChatAPI,
    aiohttp_server: Callable[..., Coroutine[Any, Any, TestServer]],
    rig_mode: str,
) -> AsyncIterator[Rig]:
    """The whole service with WeChat on, served on 127.0.0.1, and a pusher."""
    app = build_app(wechat_settings(settings, api, rig_mode))
    server = await aiohttp_server(app)
    pusher = WeChatPusher(str(server.make_url(CALLBACK)), TOKEN, AES_KEY, api.appid, api)
    rig = Rig(app, server, api, pusher)
    try:
        yield rig
        await rig.idle()
    finally:
        await pusher.close()
