"""The console API end to end: a child's urgent chat, two volunteers, least privilege, leads."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import yarl
from aiohttp.test_utils import TestClient

from bot.app import build_app
from bot.config import Settings
from bot.console.auth import ACCOUNTS
from bot.keys import STORE
from tests.bot.helpers import ChatSession
from tests.console.helpers import PASSWORD, Console


@pytest.fixture
async def client(aiohttp_client, settings: Settings) -> TestClient:
    client = await aiohttp_client(build_app(settings))
    accounts = client.app[ACCOUNTS]
    for name, role in (("alice", "volunteer"), ("bob", "volunteer"), ("sue", "supervisor")):
        await accounts.add_user(name, role, PASSWORD)
    await accounts.add_user("adam", "admin", PASSWORD)
    return client


@pytest.fixture
async def consoles(client: TestClient):
    made: list[Console] = []

    async def make(username: str, connect: bool = True) -> Console:
        c = Console(client)
        await c.login(username)
        if connect:
            await c.connect()
        made.append(c)
        return c

    yield make
    for c in made:
        await c.close()


async def test_an_urgent_chat_reaches_a_volunteer_and_back(client, consoles) -> None:
    alice, bob = await consoles("alice"), await consoles("bob")
    chat = await ChatSession.open(client)
    answer = await chat.say("我不想活了，今晚就吃药")
    assert answer["mode"] == "waiting"
    assert "第 1 位" in chat.texts()  # volunteers are online: told their place in line

    offer_a = await alice.next_event("handoff.offered")
    offer_b = await bob.next_event("handoff.offered")
    assert offer_a["conversation"]["id"] == offer_b["conversation"]["id"] == chat.id
    status, queue = await bob.get("/api/console/queue")
    assert status == 200 and [c["id"] for c in queue["queue"]] == [chat.id]

    # Both press "accept" at once: exactly one wins.
    results = await asyncio.gather(
        alice.post(f"/api/console/conversations/{chat.id}/accept"),
        bob.post(f"/api/console/conversations/{chat.id}/accept"),
    )
    statuses = sorted(s for s, _ in results)
    assert statuses == [200, 409]
    winner, loser = (alice, bob) if results[0][0] == 200 else (bob, alice)
    _, lost = results[1] if winner is alice else results[0]
    assert lost["error"]["code"] == "conflict"
    await loser.next_event("queue.changed")
    assert (await loser.get("/api/console/queue"))[1]["queue"] == []

    # The volunteer speaks; the child hears it through its channel (web chat WebSocket).
    async with client.ws_connect(f"/api/chat/sessions/{chat.id}/ws?token={chat.token}") as child_ws:
        status, _ = await winner.post(
            f"/api/console/conversations/{chat.id}/messages", {"text": "我在，你现在安全吗？"}
        )
        assert status == 200
        pushed = await child_ws.receive_json(timeout=5)
        assert pushed == {"type": "reply", "text": "我在，你现在安全吗？", "options": []}

    # The child answers; the bot stays quiet and the volunteer sees it live, with its hits.
    answer = await chat.say("我把药都藏在抽屉里了")
    assert answer == {"replies": [], "mode": "human"}
    live = await winner.next_event("message", direction="in")
    assert live["message"]["text"] == "我把药都藏在抽屉里了"

    status, detail = await winner.get(f"/api/console/conversations/{chat.id}")
    assert status == 200
    first = detail["messages"][
        next(i for i, m in enumerate(detail["messages"]) if m["direction"] == "in")
    ]
    assert first["hits"] and {"start", "end", "rule", "category"} <= set(first["hits"][0])
    status, _marked = await winner.post(
        f"/api/console/conversations/{chat.id}/hits",
        {"message_id": first["id"], "index": 0, "verdict": "confirmed"},
    )
    assert status == 200

    status, closed = await winner.post(
        f"/api/console/conversations/{chat.id}/close",
        {"category": "criminal", "summary": "孩子有自杀计划，已囤药"},
    )
    assert status == 200
    code = closed["lead"]["code"]
    lead = await client.app[STORE].lead_by_code(code)
    assert lead is not None and lead.category == "criminal" and lead.risk_level >= 2
    status, _body = await chat.post("还在吗")
    assert status == 409  # the chat has ended for the child too


async def test_a_volunteer_reads_only_what_they_held_and_every_read_is_audited(
    client, consoles
) -> None:
    alice, bob = await consoles("alice"), await consoles("bob", connect=False)
    sue = await consoles("sue", connect=False)
    chat = await ChatSession.open(client)
    await chat.say("我爸爸每天打我")
    status, _ = await bob.get(f"/api/console/conversations/{chat.id}")
    assert status == 403  # not held yet: nobody reads a queued child's words
    assert (await alice.post(f"/api/console/conversations/{chat.id}/accept"))[0] == 200
    assert (await alice.get(f"/api/console/conversations/{chat.id}"))[0] == 200
    status, denied = await bob.get(f"/api/console/conversations/{chat.id}")
    assert status == 403 and denied["error"]["code"] == "forbidden"
    assert (await bob.post(f"/api/console/conversations/{chat.id}/messages", {"text": "hi"}))[
        0
    ] == 403
    assert (await sue.get(f"/api/console/conversations/{chat.id}"))[0] == 200  # supervisor

    entries = await client.app[ACCOUNTS].audit_entries(conversation_id=chat.id)
    seen = {(e.username, e.action, e.allowed) for e in entries}
    assert ("alice", "transcript.read", True) in seen
    assert ("sue", "transcript.read", True) in seen
    assert ("bob", "transcript.denied", False) in seen

    # Not to a colleague with no console open: the child would wait in silence.
    status, refused = await alice.post(
        f"/api/console/conversations/{chat.id}/transfer", {"to": "sue"}
    )
    assert status == 409 and refused["error"]["code"] == "target_offline"
    assert (await alice.get(f"/api/console/conversations/{chat.id}"))[0] == 200  # still hers
    await bob.connect()
    # After a transfer, the new holder may read and the old one still may (they held it).
    status, _ = await alice.post(f"/api/console/conversations/{chat.id}/transfer", {"to": "bob"})
    assert status == 200
    assert (await bob.get(f"/api/console/conversations/{chat.id}"))[0] == 200
    assert (await alice.get(f"/api/console/conversations/{chat.id}"))[0] == 200
    assert (await alice.post(f"/api/console/conversations/{chat.id}/release"))[0] == 403
    assert (await bob.post(f"/api/console/conversations/{chat.id}/release"))[0] == 200
    answer = await chat.say("你好")
    assert answer["mode"] == "bot" and answer["replies"]  # the bot answers again


async def test_nobody_online_gives_the_after_hours_message_and_keeps_the_child_queued(
    client, consoles
) -> None:
    chat = await ChatSession.open(client)
    await chat.say("我想自杀")
    assert "12355" in chat.texts() and "110" in chat.texts()
    # A volunteer comes on in the morning: the child is offered to them.
    alice = await consoles("alice")
    offer = await alice.next_event("handoff.offered")
    assert offer["conversation"]["id"] == chat.id


async def test_leads_follow_the_work_order_cycle(client, consoles) -> None:
    alice, bob = await consoles("alice"), await consoles("bob", connect=False)
    chat = await ChatSession.open(client)
    await chat.say("no")  # not safe now: the script asks for a person
    await alice.post(f"/api/console/conversations/{chat.id}/accept")
    _, closed = await alice.post(
        f"/api/console/conversations/{chat.id}/close",
        {"category": "consultation", "summary": "咨询"},
    )
    lead_id = closed["lead"]["id"]
    status, leads = await alice.get("/api/console/leads")
    assert [x["id"] for x in leads["leads"]] == [lead_id]
    assert (await bob.get("/api/console/leads"))[1]["leads"] == []  # not bob's
    status, moved = await alice.post(
        f"/api/console/leads/{lead_id}/state", {"state": "dispatched", "note": "派给区院"}
    )
    assert status == 200 and moved["lead"]["state"] == "dispatched"
    status, err = await alice.post(f"/api/console/leads/{lead_id}/state", {"state": "closed"})
    assert status == 409 and err["error"]["code"] == "invalid_transition"
    assert (await bob.post(f"/api/console/leads/{lead_id}/state", {"state": "in_hand"}))[0] == 403
    _, detail = await alice.get(f"/api/console/leads/{lead_id}")
    assert [h["to"] for h in detail["history"]] == ["dispatched"]
    assert detail["history"][0]["username"] == "alice"


async def test_roles_and_csrf(client, consoles) -> None:
    alice = await consoles("alice", connect=False)
    adam = await consoles("adam", connect=False)
    status, _ = await alice.post("/api/console/canned", {"title": "x", "text": "y"})
    assert status == 403
    status, _saved = await adam.post("/api/console/canned", {"title": "安慰", "text": "你很勇敢"})
    assert status == 200
    _, canned = await alice.get("/api/console/canned?lang=zh-CN")
    assert "你很勇敢" in [c["text"] for c in canned["canned"]]
    assert (await adam.get("/api/console/queue"))[0] == 403  # admins don't take chats
    alice.csrf = "wrong"
    status, err = await alice.post("/api/console/presence", {"status": "away"})
    assert status == 403 and err["error"]["code"] == "csrf_failed"


async def test_the_childs_page_hears_who_is_answering(client, consoles) -> None:
    alice = await consoles("alice")
    chat = await ChatSession.open(client)
    await chat.say("我想自杀")
    async with client.ws_connect(f"/api/chat/sessions/{chat.id}/ws?token={chat.token}") as ws:
        await alice.post(f"/api/console/conversations/{chat.id}/accept")
        got = [await ws.receive_json(timeout=5) for _ in range(2)]
        assert {"type": "mode", "mode": "human"} in got
        assert any(e["type"] == "reply" and "老师" in e["text"] for e in got)
        await alice.post(f"/api/console/conversations/{chat.id}/release")
        got = [await ws.receive_json(timeout=5) for _ in range(2)]
        assert {"type": "mode", "mode": "bot"} in got


async def test_a_live_message_reaches_the_volunteer_with_its_hits(client, consoles) -> None:
    alice = await consoles("alice")
    chat = await ChatSession.open(client)
    await chat.say("我想自杀")
    await alice.next_event("handoff.offered")
    await alice.post(f"/api/console/conversations/{chat.id}/accept")
    await chat.say("我已经把药攒够了")
    live = await alice.next_event("message", direction="in")
    assert live["message"]["risk_level"] is not None
    hits = live["message"]["assessment"]["hits"]
    assert hits and any(h["category"] == "suicide_self_harm" for h in hits)


async def test_a_child_who_quotes_their_lead_code_comes_back_to_the_same_case(
    client, consoles
) -> None:
    alice = await consoles("alice")
    first = await ChatSession.open(client)
    await first.say("no")  # not safe: a person is asked for
    await alice.post(f"/api/console/conversations/{first.id}/accept")
    _, closed = await alice.post(
        f"/api/console/conversations/{first.id}/close",
        {"category": "civil", "summary": "家里不给饭吃"},
    )
    code = closed["lead"]["code"]

    again = await ChatSession.open(client)  # days later, a new chat
    answer = await again.say(f"我的编号是 {code}")
    assert code in again.texts() and answer["mode"] == "waiting"
    await alice.next_event("handoff.offered", again.id)  # not the first chat's offer
    await alice.post(f"/api/console/conversations/{again.id}/accept")
    _, detail = await alice.get(f"/api/console/conversations/{again.id}")
    assert code in [x["code"] for x in detail["leads"]]  # the earlier case, in front of her
    _, closed2 = await alice.post(
        f"/api/console/conversations/{again.id}/close",
        {"category": "civil", "summary": "孩子回来说情况更糟了"},
    )
    assert closed2["lead"]["code"] == code  # the same case, updated
    assert closed2["lead"]["summary"] == "孩子回来说情况更糟了"


async def test_a_supervisor_can_put_a_chat_in_the_queue(client, consoles) -> None:
    sue = await consoles("sue", connect=False)
    alice = await consoles("alice", connect=False)
    chat = await ChatSession.open(client)
    await chat.say("yes")
    assert (await alice.post(f"/api/console/conversations/{chat.id}/request"))[0] == 403
    status, _ = await sue.post(f"/api/console/conversations/{chat.id}/request")
    assert status == 200
    _, queue = await sue.get("/api/console/queue")
    assert [c["id"] for c in queue["queue"]] == [chat.id]
    assert (await sue.post(f"/api/console/conversations/{chat.id}/request"))[0] == 409


async def test_the_queue_is_re_ranked_when_a_waiting_child_writes_something_worse(
    client, consoles
) -> None:
    alice = await consoles("alice", connect=False)
    first = await ChatSession.open(client)
    await first.say("我爸爸每天打我")  # urgent
    second = await ChatSession.open(client)
    await second.say("我爸爸喝醉了总是打我")  # urgent, waiting longer than nobody
    _, queue = await alice.get("/api/console/queue")
    assert [c["id"] for c in queue["queue"]] == [first.id, second.id]
    await second.say("他现在拿着刀过来了，我躲在厕所")  # now imminent
    _, queue = await alice.get("/api/console/queue")
    assert [c["id"] for c in queue["queue"]] == [second.id, first.id]
    assert queue["queue"][0]["risk_level"] == "imminent"
    assert "110" in second.texts()  # and the child is told the numbers at once


async def test_a_console_socket_closes_when_its_login_ends(client, consoles, monkeypatch) -> None:
    import bot.console.api

    monkeypatch.setattr(bot.console.api, "BEAT_SECONDS", 0.2)
    alice = await consoles("alice")
    other_tab = Console(client)
    other_tab.http.cookie_jar.update_cookies(
        alice.http.cookie_jar.filter_cookies(yarl.URL(alice.base))
    )
    other_tab.csrf = alice.csrf
    assert (await other_tab.post("/api/console/logout"))[0] == 200  # logged out elsewhere
    await other_tab.close()
    assert alice.ws is not None
    msg = await alice.ws.receive(timeout=5)
    while msg.type == aiohttp.WSMsgType.TEXT:  # events sent before the check
        msg = await alice.ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert alice.ws.close_code == 4401
    for _ in range(50):  # the server notices the closed socket and takes alice offline
        if "qingting_volunteers_available 0.0" in await (await client.get("/metrics")).text():
            break
        await asyncio.sleep(0.05)
    chat = await ChatSession.open(client)
    await chat.say("我想自杀")
    assert "12355" in chat.texts()  # nobody counted as available: the after-hours message
