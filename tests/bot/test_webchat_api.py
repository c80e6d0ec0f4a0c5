"""The web chat API: a child's whole intake, idempotency, risk routing and bad input."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.app import STORE, build_app
from bot.config import Settings
from tests.bot.helpers import ChatSession


@pytest.fixture
async def client(aiohttp_client, settings: Settings) -> TestClient:
    return await aiohttp_client(build_app(settings))


async def walk_intake(chat: ChatSession) -> dict:
    """The path of a child reporting bullying, choosing options and typing."""
    await chat.say("yes")  # safe right now
    assert "me" in chat.options()
    await chat.say("1")  # "me", chosen by its number
    assert "bully" in chat.options()
    await chat.say("被欺负")  # chosen by its label
    await chat.say("班上有几个同学总是说我坏话，还不跟我玩")
    assert "today" in chat.options()
    await chat.say("recent")
    await chat.say("跳过")  # district skipped
    assert set(chat.options()) >= {"yes", "no"}
    await chat.say("no")  # no person now
    assert "说我坏话" in chat.texts()  # the summary read back
    return await chat.say("ok")


async def test_a_child_completes_the_intake_and_keeps_a_lead_code(client: TestClient) -> None:
    chat = await ChatSession.open(client)
    assert any("名字" in r["text"] for r in chat.greeting)  # the anonymity promise
    last = await walk_intake(chat)
    code = re.search(r"QT-[A-Z0-9]{4,}", chat.texts())
    assert code, chat.texts()
    assert "12355" in chat.texts()
    assert last["mode"] == "closed"
    store = client.app[STORE]
    lead = await store.lead_by_code(code.group(0))
    assert lead is not None and lead.conversation_id == chat.id
    assert "说我坏话" in (lead.summary or "")
    status, body = await chat.post("还有一件事")
    assert status == 409 and body["error"]["code"] == "conversation_closed"


@pytest.mark.parametrize(("lang", "word"), [("zh-TW", "名字"), ("en", "name"), ("zh-CN", "名字")])
async def test_the_greeting_speaks_the_sessions_language(client, lang, word) -> None:
    chat = await ChatSession.open(client, lang=lang)
    assert any(word in r["text"] for r in chat.greeting)


async def test_the_same_client_message_id_stores_once_and_answers_the_same(client) -> None:
    chat = await ChatSession.open(client)
    first = await chat.say("yes", client_message_id="retry-1")
    again = await chat.say("yes", client_message_id="retry-1")
    assert again["replies"] == first["replies"]
    transcript = await client.app[STORE].transcript(chat.id)
    assert [m.text for m in transcript if m.direction == "in"] == ["yes"]


async def test_unexpected_text_gets_the_fallback_not_silence(client) -> None:
    chat = await ChatSession.open(client)
    answer = await chat.say("asdfgh")
    assert answer["replies"] and answer["mode"] == "bot"
    assert {"yes", "no"} <= set(chat.options())  # asked again


async def test_an_urgent_message_goes_to_a_human_with_the_after_hours_fallback(client) -> None:
    chat = await ChatSession.open(client)
    answer = await chat.say("我不想活了，我想自杀")
    assert answer["mode"] == "waiting"
    assert "12355" in chat.texts() and "110" in chat.texts()
    # A calm next message does not lower anything: still waiting, still answered.
    answer = await chat.say("嗯")
    assert answer["mode"] == "waiting" and answer["replies"]
    conv = await client.app[STORE].get_conversation(chat.id)
    assert conv is not None and conv.risk_level >= 2 and conv.mode == "waiting"


async def test_not_safe_right_now_shows_110_and_120_at_once(client) -> None:
    chat = await ChatSession.open(client)
    answer = await chat.say("no")
    texts = [r["text"] for r in answer["replies"]]
    police = next(i for i, t in enumerate(texts) if "110" in t)
    ambulance = next(i for i, t in enumerate(texts) if "120" in t)
    person = next(i for i, t in enumerate(texts) if "大人" in t or "老师" in t)
    assert max(police, ambulance) < person  # the numbers come before waiting for a person
    assert answer["mode"] == "waiting"


async def test_the_assessment_is_stored_with_the_message(client) -> None:
    chat = await ChatSession.open(client)
    await chat.say("我想自杀")
    inbound = [m for m in await client.app[STORE].transcript(chat.id) if m.direction == "in"]
    assert inbound[0].risk_level is not None and inbound[0].risk_level >= 2
    assert inbound[0].assessment and inbound[0].assessment["hits"]


BAD_BODIES = [
    ("", 400, "empty_text"),
    ("   ", 400, "empty_text"),
    ("x" * 10_000, 413, "text_too_long"),
    ("hi\x00there", 400, "invalid_text"),
    ("bell\x07", 400, "invalid_text"),
    (12, 400, "invalid_text"),
    (None, 400, "invalid_text"),
]


@pytest.mark.parametrize(("text", "status", "code"), BAD_BODIES)
async def test_bad_text_is_refused_clearly_and_nothing_is_stored(client, text, status, code):
    chat = await ChatSession.open(client)
    got, body = await chat.post(text)
    assert (got, body["error"]["code"]) == (status, code)
    assert body["error"]["message"]
    assert await _inbound_count(client, chat.id) == 0


async def test_bad_tokens_and_sessions(client: TestClient) -> None:
    chat = await ChatSession.open(client)
    url = f"/api/chat/sessions/{chat.id}/messages"
    body = {"text": "hi", "client_message_id": "x1"}
    r = await client.post(url, json=body)
    assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
    r = await client.post(url, json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status == 401
    other = await ChatSession.open(client)
    r = await client.post(url, json=body, headers={"Authorization": f"Bearer {other.token}"})
    assert r.status == 401  # one session's token never opens another
    r = await client.post(
        "/api/chat/sessions/doesnotexist/messages",
        json=body,
        headers={"Authorization": f"Bearer {chat.token}"},
    )
    assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_session"
    assert await _inbound_count(client, chat.id) == 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"[1,2]", "invalid_body"), (b"not json", "invalid_json"), (b"\xff\xfe", "invalid_json")],
)
async def test_a_body_that_is_not_a_json_object(client, raw, code) -> None:
    chat = await ChatSession.open(client)
    r = await client.post(
        f"/api/chat/sessions/{chat.id}/messages",
        data=raw,
        headers={"Authorization": f"Bearer {chat.token}", "Content-Type": "application/json"},
    )
    assert r.status == 400 and (await r.json())["error"]["code"] == code


async def test_missing_client_message_id_and_bad_session_options(client) -> None:
    chat = await ChatSession.open(client)
    r = await client.post(
        f"/api/chat/sessions/{chat.id}/messages",
        json={"text": "hi"},
        headers={"Authorization": f"Bearer {chat.token}"},
    )
    assert (await r.json())["error"]["code"] == "invalid_client_message_id"
    r = await client.post("/api/chat/sessions", json={"lang": "fr"})
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_lang"
    r = await client.post("/api/chat/sessions", json={"script": "../etc"})
    assert r.status == 400
    r = await client.post("/api/chat/sessions", data=b"x" * (70 * 1024))
    assert r.status == 413


async def test_healthz_reports_the_database(client: TestClient) -> None:
    r = await client.get("/healthz")
    assert r.status == 200
    store = client.app[STORE]
    await store.engine.dispose()
    real_url = store.engine.url
    from sqlalchemy.ext.asyncio import create_async_engine

    store.engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    try:
        r = await client.get("/healthz")
        assert r.status == 503
    finally:
        await store.engine.dispose()
        store.engine = create_async_engine(real_url)


async def test_the_database_file_never_holds_what_a_child_typed(client, settings) -> None:
    chat = await ChatSession.open(client)
    await chat.say("我爸爸昨天晚上用皮带打我")
    db = Path(settings.database_url.split(":///", 1)[1])
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert "皮带".encode() not in raw
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from messages").fetchone()[0] >= 2


async def _inbound_count(client: TestClient, conversation_id: str) -> int:
    transcript = await client.app[STORE].transcript(conversation_id)
    return sum(1 for m in transcript if m.direction == "in")


async def test_a_page_can_resume_from_the_server(client: TestClient) -> None:
    chat = await ChatSession.open(client)
    await chat.say("yes")
    r = await client.get(
        f"/api/chat/sessions/{chat.id}", headers={"Authorization": f"Bearer {chat.token}"}
    )
    body = await r.json()
    assert r.status == 200 and body["mode"] == "bot"
    froms = [m["from"] for m in body["messages"]]
    assert froms[: len(chat.greeting)] == ["bot"] * len(chat.greeting)
    assert {"from": "child", "text": "yes", "options": []} in body["messages"]
    r = await client.get(f"/api/chat/sessions/{chat.id}", headers={"Authorization": "Bearer no"})
    assert r.status == 401


async def test_a_turn_that_fails_still_answers_and_is_retried(client, monkeypatch) -> None:
    from bot.app import PIPELINE

    chat = await ChatSession.open(client)
    pipeline = client.app[PIPELINE]
    real = pipeline._run_turn

    async def broken(accepted):
        raise RuntimeError("the dialogue engine fell over")

    monkeypatch.setattr(pipeline, "_run_turn", broken)
    answer = await chat.say("yes", client_message_id="fails-once")
    text = chat.texts()
    assert "110" in text and "12355" in text  # never silence: the fallback, with the numbers
    assert answer["mode"] == "bot"
    monkeypatch.setattr(pipeline, "_run_turn", real)
    again = await chat.say("yes", client_message_id="fails-once")  # the page's retry
    assert "me" in chat.options() and again["replies"] != answer["replies"]
    inbound = [m for m in await client.app[STORE].transcript(chat.id) if m.direction == "in"]
    assert len(inbound) == 1  # stored once, answered properly on the retry


async def test_metrics_count_what_on_call_staff_watch(client) -> None:
    chat = await ChatSession.open(client)
    await chat.say("yes")
    await chat.say("我想自杀")
    r = await client.get("/metrics")
    body = await r.text()
    assert r.status == 200
    assert 'qingting_messages_total{kind="text"} 2.0' in body
    assert "qingting_handoffs_requested_total 1.0" in body
    assert "qingting_queue_waiting 1.0" in body
    assert "qingting_volunteers_available 0.0" in body
