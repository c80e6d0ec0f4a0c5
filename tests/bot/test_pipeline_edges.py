"""Edges of a turn: consoles that cannot be told, turns recovery cannot run, a lead code as
the very first message. In each the child still gets an answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.app import PIPELINE, STORE, build_app
from bot.channels.base import Inbound, Outbound
from bot.config import Settings
from bot.pipeline import Pipeline
from storage.views import ConversationView
from tests.bot.helpers import ChatSession


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Any:
    # No background sweep: the tests call recover() themselves.
    return await aiohttp_client(build_app(replace(settings, recover_unanswered=False)))


def collector() -> tuple[list[tuple[str, list[str]]], Any]:
    sent: list[tuple[str, list[str]]] = []

    async def deliver(conv: ConversationView, replies: Any) -> None:
        sent.append((conv.id, [r.text for r in replies]))

    return sent, deliver


async def stored_unanswered(client: Any, text: str) -> tuple[Pipeline, ChatSession, Any]:
    """A web chat whose next message is stored and left for recovery (as after a crash)."""
    chat = await ChatSession.open(client)
    pipeline: Pipeline = client.app[PIPELINE]
    accepted = await pipeline.accept(
        Inbound("web", chat.id, f"{chat.id}:m", text, datetime.now(UTC)), conversation_id=chat.id
    )
    return pipeline, chat, accepted


async def test_a_recovered_urgent_turn_is_answered_even_if_consoles_cannot_be_told(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, chat, _accepted = await stored_unanswered(client, "药都攒够了 今晚就吃")

    async def broken(*_a: Any, **_k: Any) -> None:
        raise ConnectionError("bus down")

    monkeypatch.setattr(pipeline.desk, "notify", broken)
    sent, deliver = collector()
    assert await pipeline.recover(deliver) == 1
    assert [cid for cid, _ in sent] == [chat.id]
    assert any("110" in t or "120" in t for t in sent[0][1])  # the emergency numbers, now
    conv = await client.app[STORE].get_conversation(chat.id)
    assert conv is not None and conv.mode == "waiting"  # queued: the clock re-offers it


async def test_a_turn_recovery_cannot_run_gets_the_fallback_once(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, chat, accepted = await stored_unanswered(client, "yes")

    async def broken(_accepted: Any) -> Any:
        raise RuntimeError("script version gone")

    monkeypatch.setattr(pipeline, "_run_turn", broken)
    sent, deliver = collector()
    await pipeline.recover(deliver)
    await pipeline.recover(deliver)  # the next sweep retries the turn, not the fallback
    assert len(sent) == 1 and sent[0][0] == chat.id
    assert "12355" in sent[0][1][0]
    msg = await client.app[STORE].get_message(accepted.message.id)
    assert msg is not None and msg.processed_at is None  # still waiting for a real answer


async def test_a_lead_code_as_the_first_message_on_a_push_channel_finds_the_case(
    client: Any,
) -> None:
    store = client.app[STORE]
    earlier = await ChatSession.open(client)
    async with store.turn(earlier.id) as turn:
        await turn.upsert_lead("QT-7K3M9P", risk_level=2, summary="被同学欺负")
    pipeline: Pipeline = client.app[PIPELINE]
    accepted = await pipeline.accept(
        Inbound("wechat", "oKID_first_message", "w1", "我的编号是 qt-7k3m9p", datetime.now(UTC))
    )
    replies, mode = await pipeline.respond(accepted)
    texts = " ".join(r.text for r in replies if isinstance(r, Outbound))
    assert "QT-7K3M9P" in texts
    assert mode == "waiting"
    conv = await store.get_conversation(accepted.conversation_id)
    assert conv is not None and conv.flags.get("greeted")
    assert conv.flags.get("returning_lead") == "QT-7K3M9P"


async def test_after_a_volunteer_hands_back_the_chat_the_child_can_ask_for_a_person_again(
    client: Any,
) -> None:
    chat = await ChatSession.open(client)
    assert (await chat.say("no"))["mode"] == "waiting"  # not safe: queued for a person
    store = client.app[STORE]
    async with store.turn(chat.id) as turn:  # what release() leaves: the bot, script at 'waiting'
        await turn.update(mode="bot", flags={**turn.conversation.flags, "human_seen": True})
    answer = await chat.say("还有人吗")
    assert answer["mode"] == "bot"
    assert "大人会看到" not in chat.texts()[-80:]  # nobody is reading: never claim it
    assert set(chat.options()) == {"person", "more"}
    assert (await chat.say("person"))["mode"] == "waiting"
