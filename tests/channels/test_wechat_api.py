"""The token cache shared through the store, and the text combining/splitting rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.base import Outbound, QuickReply
from bot.channels.wechat_api import TokenCache, WeChatAPI, make_client
from bot.channels.wechat_text import combine, split_text
from storage.crypto import Vault
from storage.store import Store
from tests.conftest import TEST_SECRET
from tests.fakes.wechat_api import SEND_PATH, STABLE_TOKEN_PATH, TOKEN_PATH, FakeWeChatAPI

KID = "oKID_tokens"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store on SQLite and PostgreSQL (the kv table is what processes share)."""
    s = Store.open(database_url, Vault(TEST_SECRET))
    yield s
    await s.close()


def process(api: FakeWeChatAPI, store: Store) -> WeChatAPI:
    """What one worker process builds: its own wechatpy client and token cache."""
    client = make_client(api.base_url, api.appid, api.secret)
    return WeChatAPI(client, TokenCache(client, store))


async def test_workers_share_one_stable_token_through_the_store(
    api: FakeWeChatAPI, store: Store
) -> None:
    workers = [process(api, store) for _ in range(4)]
    api.user_message(KID)
    tokens = await asyncio.gather(*(w.tokens.get() for w in workers))
    assert len(set(tokens)) == 1
    assert api.count(STABLE_TOKEN_PATH) == 1  # one refresher, the others read its result
    assert api.count(TOKEN_PATH) == 0  # never the token endpoint that revokes older tokens
    await asyncio.gather(*(w.send_text(KID, f"第 {i} 条") for i, w in enumerate(workers)))
    assert sorted(api.messages_to(KID)) == sorted(f"第 {i} 条" for i in range(4))


async def test_a_revoked_token_is_replaced_once_for_every_worker(
    api: FakeWeChatAPI, store: Store
) -> None:
    a, b = process(api, store), process(api, store)
    api.user_message(KID)
    await a.send_text(KID, "一")
    await b.send_text(KID, "二")
    api.revoke_tokens()  # e.g. someone force-refreshed in the WeChat console
    await a.send_text(KID, "三")  # 40001 → refresh (shared) → retry
    fetches = api.count(STABLE_TOKEN_PATH)
    await b.send_text(KID, "四")  # 40001 → finds a's new token in the store
    assert api.count(STABLE_TOKEN_PATH) == fetches
    assert api.messages_to(KID) == ["一", "二", "三", "四"]
    errcodes = [r.response.get("errcode") for r in api.requests if r.path == SEND_PATH]
    assert errcodes == [0, 0, 40001, 0, 40001, 0]


async def test_a_busy_wechat_is_retried_after_a_pause(api: FakeWeChatAPI, store: Store) -> None:
    w = process(api, store)
    api.user_message(KID)
    api.fail_next(SEND_PATH, -1)
    await w.send_text(KID, "hello")
    assert api.messages_to(KID) == ["hello"]


def test_one_turn_becomes_one_numbered_message() -> None:
    text = combine(
        [
            Outbound("你好"),
            Outbound("你安全吗？", (QuickReply("安全", "yes"), QuickReply("不安全", "no"))),
        ]
    )
    assert text == "你好\n\n你安全吗？\n\n1. 安全\n2. 不安全"


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=3000),
    limit=st.integers(min_value=4, max_value=600),
)
def test_split_pieces_fit_and_lose_nothing_but_whitespace(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(0 < len(p.encode("utf-8")) <= limit for p in pieces)
    squash = "".join(text.split())
    assert "".join("".join(p.split()) for p in pieces) == squash


async def test_a_network_error_never_carries_the_secret_or_token_into_logs() -> None:
    import functools
    import socket

    from bot.channels.wechat_api import WeChatAPIError, make_client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens once the socket is closed
    client = make_client(f"http://127.0.0.1:{closed_port}/", "wxAPPID", "TOPSECRET")
    from bot.channels.wechat_api import _blocking

    with pytest.raises(WeChatAPIError) as caught:
        await _blocking(
            functools.partial(
                client.get,
                "sns/jscode2session",
                params={"js_code": "CODE1", "secret": "TOPSECRET", "access_token": None},
            )
        )
    text = str(caught.value)
    assert "TOPSECRET" not in text and "CODE1" not in text
    assert "secret=***" in text  # the URL is still there to debug with, minus its secrets
