"""A WeChat child handed to a volunteer: offer, accept, relay both ways through the fake API."""

from __future__ import annotations

import pytest

from bot.console.auth import ACCOUNTS
from tests.channels.conftest import Rig
from tests.console.helpers import PASSWORD, Console

KID = "oKIDopenid0000000000000001"


@pytest.fixture
async def volunteer(rig: Rig):
    await rig.app[ACCOUNTS].add_user("alice", "volunteer", PASSWORD)
    console = Console(rig.server)
    await console.login("alice")
    await console.connect()
    yield console
    await console.close()


async def test_an_urgent_wechat_chat_is_taken_over_by_a_volunteer(rig: Rig, volunteer) -> None:
    result = await rig.pusher.push_text(
        KID, "我爸又打我了，我好怕，我想死", mode="safe", fmt="json"
    )
    assert result.acknowledged
    offer = await volunteer.next_event("handoff.offered")
    conv_id = offer["conversation"]["id"]
    [first] = await rig.api.wait_for_messages(KID, 1)
    assert "第 1 位" in first  # a person is coming, and the child knows their place

    assert (await volunteer.post(f"/api/console/conversations/{conv_id}/accept"))[0] == 200
    joined = await rig.api.wait_for_messages(KID, 2)
    assert "老师" in joined[1]

    status, _ = await volunteer.post(
        f"/api/console/conversations/{conv_id}/messages", {"text": "我在。你现在在哪里？安全吗？"}
    )
    assert status == 200
    said = await rig.api.wait_for_messages(KID, 3)
    assert said[2] == "我在。你现在在哪里？安全吗？"

    await rig.pusher.push_text(KID, "我在自己房间，门锁上了", mode="safe", fmt="json")
    live = await volunteer.next_event("message", direction="in")
    assert live["message"]["text"] == "我在自己房间，门锁上了"
    await rig.idle()
    assert len(rig.api.messages_to(KID)) == 3  # the bot stayed quiet while a person talked

    status, closed = await volunteer.post(
        f"/api/console/conversations/{conv_id}/close",
        {"category": "criminal", "summary": "父亲反复殴打，孩子有轻生念头"},
    )
    assert status == 200
    last = await rig.api.wait_for_messages(KID, 4)
    assert closed["lead"]["code"] in last[3]


async def test_a_reply_outside_the_48_hour_window_is_reported_to_the_volunteer(
    rig: Rig, volunteer
) -> None:
    await rig.pusher.push_text(KID, "我想自杀", mode="plain", fmt="xml")
    offer = await volunteer.next_event("handoff.offered")
    conv_id = offer["conversation"]["id"]
    assert (await volunteer.post(f"/api/console/conversations/{conv_id}/accept"))[0] == 200
    await rig.idle()
    rig.api.advance(49 * 3600)  # the child went quiet for two days
    status, _ = await volunteer.post(
        f"/api/console/conversations/{conv_id}/messages", {"text": "你还好吗？"}
    )
    assert status == 200  # stored: nothing the volunteer wrote is lost
    failed = await volunteer.next_event("delivery.failed")
    assert failed["conversation_id"] == conv_id
    _, detail = await volunteer.get(f"/api/console/conversations/{conv_id}")
    assert detail["delivery"]["blocked"] or detail["delivery"]["undelivered"]
    assert "你还好吗？" in [m["text"] for m in detail["messages"]]
