"""The WeChat channel end to end: pushes from the pusher, replies at the fake WeChat API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from bot.channels.base import Outbound
from bot.channels.wechat_api import WeChatAPIError
from handoff.notices import notice
from tests.channels.conftest import Rig
from tests.fakes.wechat_api import SEND_PATH, STABLE_TOKEN_PATH, TYPING_PATH
from tests.fakes.wechat_pusher import encrypt_payload, sign, to_xml

KID = "oKID_0000000000000000000001"


async def turn(rig: Rig, openid: str, text: str, mode: Any, fmt: Any, n: int) -> str:
    """Push text and return the nth reply the child receives."""
    result = await rig.pusher.push_text(openid, text, mode=mode, fmt=fmt)
    assert result.acknowledged, result.deliveries
    return (await rig.api.wait_for_messages(openid, n))[n - 1]


async def stored_inbound(rig: Rig, openid: str) -> list[Any]:
    """The child's stored messages in the open conversation of openid."""
    conv = await rig.conversation(openid)
    if conv is None:
        return []
    return [m for m in await rig.store.transcript(conv.id) if m.direction == "in"]


# ====================================================================== URL check


async def test_url_verification_echoes_echostr(rig: Rig) -> None:
    d = await rig.pusher.verify_url("4375120948345356249")
    assert (d.status, d.body) == (200, "4375120948345356249")


async def test_url_verification_with_a_wrong_signature_is_refused(rig: Rig) -> None:
    params = rig.pusher.signed_params()
    params["signature"] = "0" * 40
    params["echostr"] = "123"
    d = await rig.pusher.push_raw("", params=params, method="GET")
    assert d.status == 403
    assert d.body != "123"


# ====================================================================== a whole intake dialogue


@pytest.mark.parametrize(
    ("mode", "fmt"), [("safe", "json"), ("plain", "xml"), ("compatible", "xml")]
)
async def test_a_whole_intake_dialogue_by_numbers(rig: Rig, mode: Any, fmt: Any) -> None:
    greeting = await turn(rig, KID, "你好", mode, fmt, 1)
    # The greeting and the first question arrive as ONE message, options numbered.
    assert "我是倾听" in greeting and "你现在安全吗" in greeting
    assert "1. 我现在安全" in greeting and "3. 我不知道" in greeting
    assert "关于谁" in await turn(rig, KID, "1", mode, fmt, 2)  # 我现在安全
    assert "什么样的事" in await turn(rig, KID, "1", mode, fmt, 3)  # 我自己
    story_q = await turn(rig, KID, "3", mode, fmt, 4)  # 被欺负
    assert "发生了什么" in story_q
    assert "什么时候" in await turn(rig, KID, "有同学笑话我的衣服", mode, fmt, 5)
    assert "哪个区" in await turn(rig, KID, "2", mode, fmt, 6)  # 这几天
    assert "聊聊" in await turn(rig, KID, "跳过", mode, fmt, 7)
    summary = await turn(rig, KID, "2", mode, fmt, 8)  # 先不用
    assert "有同学笑话我的衣服" in summary and "1. 对的" in summary
    goodbye = await turn(rig, KID, "1", mode, fmt, 9)  # 对的
    conv = await rig.conversation(KID)
    assert conv is None  # the script ended the conversation
    assert "12355" in goodbye
    # The lead code the child was given is a real lead.
    code = goodbye.split("号码：", 1)[1].split()[0]
    lead = await rig.store.lead_by_code(code)
    assert lead is not None and "笑话我的衣服" in (lead.summary or "")
    # One message per turn: nine pushes, nine texts, nothing else sent.
    assert len(rig.api.bodies_to(KID)) == 9


async def test_typing_indicator_is_shown_before_the_reply(rig: Rig) -> None:
    await turn(rig, KID, "你好", "plain", "json", 1)
    await rig.idle()
    typing = [r for r in rig.api.requests if r.path in (TYPING_PATH, SEND_PATH)]
    assert [r.path for r in typing] == [TYPING_PATH, SEND_PATH]
    assert rig.api.typing_events == [(KID, "Typing")]


# ====================================================================== retries and duplicates


async def test_a_retried_push_after_a_slow_first_delivery_gets_one_reply(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = rig.store
    original = store.store_inbound
    first_done = asyncio.Event()
    calls = 0

    async def slow_first(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            try:
                await asyncio.sleep(0.6)  # longer than the pusher waits: WeChat will resend
                return await original(*args, **kwargs)
            finally:
                first_done.set()
        return await original(*args, **kwargs)

    monkeypatch.setattr(store, "store_inbound", slow_first)
    rig.pusher.timeout = 0.3
    result = await rig.pusher.push_text(KID, "你好", mode="safe", fmt="json")
    assert result.deliveries[0].error == "timeout"
    assert result.acknowledged and len(result.deliveries) >= 2
    await first_done.wait()
    await rig.idle()
    assert len(rig.api.bodies_to(KID)) == 1
    assert len(await stored_inbound(rig, KID)) == 1


async def test_a_redelivery_while_the_first_is_still_processing_gets_no_second_reply(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = rig.slow_down_process(monkeypatch)
    payload = rig.pusher.build_payload(
        KID, {"MsgType": "text", "Content": "你好"}, 7000000000000001, None
    )
    rig.api.user_message(KID)
    for _ in range(3):  # three deliveries of the same MsgId, fresh timestamp and nonce each
        params, body = rig.pusher.encode(payload, "plain", "json", KID)
        d = await rig.pusher.push_raw(body, params=params)
        assert (d.status, d.body) == (200, "success")
    release()
    await rig.idle()
    assert len(rig.api.bodies_to(KID)) == 1
    assert len(await stored_inbound(rig, KID)) == 1


# ====================================================================== security


async def test_a_forged_signature_is_refused_and_nothing_stored(rig: Rig) -> None:
    body = json.dumps(
        {
            "ToUserName": "gh",
            "FromUserName": KID,
            "CreateTime": 1,
            "MsgType": "text",
            "Content": "hi",
            "MsgId": 123,
        }
    )
    params = rig.pusher.signed_params()
    params["signature"] = sign("not-the-token", params["timestamp"], params["nonce"])
    d = await rig.pusher.push_raw(body, params=params)
    assert d.status == 403
    d = await rig.pusher.push_raw(body, params={})
    assert d.status == 403
    await rig.idle()
    assert await rig.conversation(KID) is None
    assert rig.api.sent == []


async def test_a_forged_msg_signature_in_safe_mode_is_refused(rig: Rig) -> None:
    payload = rig.pusher.build_payload(KID, {"MsgType": "text", "Content": "hi"}, 99, None)
    params, body = rig.pusher.encode(payload, "safe", "json", KID)
    params["msg_signature"] = "f" * 40
    d = await rig.pusher.push_raw(body, params=params)
    assert d.status == 403
    assert await rig.conversation(KID) is None


XXE = f"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>{KID}</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>1</MsgId></xml>"""

LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + f"]><xml><FromUserName>{KID}</FromUserName><MsgType>text</MsgType>"
    "<Content>&lol9;</Content><MsgId>2</MsgId><CreateTime>1</CreateTime></xml>"
)


@pytest.mark.parametrize("body", [XXE, LAUGHS, XXE.replace("DOCTYPE", "doctype")])
async def test_xxe_and_billion_laughs_are_refused_and_nothing_stored(rig: Rig, body: str) -> None:
    d = await rig.pusher.push_raw(body)  # correctly signed: only the body is hostile
    assert d.status == 400
    await rig.idle()
    assert await rig.conversation(KID) is None


async def test_an_encrypted_dtd_is_refused_too(rig: Rig) -> None:
    encrypt = encrypt_payload(rig.pusher.aes_key, rig.pusher.appid, XXE)
    body = to_xml({"ToUserName": "gh", "Encrypt": encrypt})
    params = rig.pusher.signed_params(encrypt=encrypt, openid=KID)
    d = await rig.pusher.push_raw(body, params=params)
    assert d.status == 400
    assert await rig.conversation(KID) is None


async def test_a_body_over_the_cap_is_refused(rig: Rig) -> None:
    d = await rig.pusher.push_raw("{" + " " * (70 * 1024) + "}")
    assert d.status == 413
    assert await rig.conversation(KID) is None


@pytest.mark.parametrize(
    "body",
    [
        "",
        "success",
        "{}",
        "[]",
        "<xml></xml>",
        "<xml>x</xml>",
        "<a/>",
        '{"MsgType": 5}',
        '{"FromUserName": "o1", "MsgType": "text", "Content": "x", "MsgId": "abc", "CreateTime": 1}',
        '{"FromUserName": "../etc", "MsgType": "text", "Content": "x", "MsgId": 1, "CreateTime": 1}',
        b"\xff\xfe<xml/>",
    ],
)
async def test_malformed_bodies_get_400_never_500(rig: Rig, body: str | bytes) -> None:
    d = await rig.pusher.push_raw(body)
    assert d.status == 400, (body, d.status, d.body)


@pytest.mark.parametrize("encrypt", ["not base64 !!", "QUJD", "A" * 64, ""])
async def test_garbage_ciphertext_with_a_valid_msg_signature_gets_400(
    rig: Rig, encrypt: str
) -> None:
    body = json.dumps({"ToUserName": "gh", "Encrypt": encrypt})
    d = await rig.pusher.push_raw(body, params=rig.pusher.signed_params(encrypt=encrypt))
    assert d.status == 400, (encrypt, d.status, d.body)


# ====================================================================== kinds of messages


async def test_an_image_is_recorded_not_fetched_and_answered(rig: Rig) -> None:
    result = await rig.pusher.push_image(KID, mode="safe", fmt="xml")
    assert result.acknowledged
    await rig.api.wait_for_messages(KID, 1)
    [msg] = await stored_inbound(rig, KID)
    assert (msg.kind, msg.text) == ("image", notice("image_received", "zh-CN"))


async def test_a_card_is_recorded_with_its_title(rig: Rig) -> None:
    await turn(rig, KID, "你好", "plain", "json", 1)
    result = await rig.pusher.push_card(KID, title="求助指南", mode="plain", fmt="json")
    assert result.acknowledged
    await rig.api.wait_for_messages(KID, 2)
    msgs = await stored_inbound(rig, KID)
    assert (msgs[-1].kind, msgs[-1].text) == ("card", "[卡片] 求助指南")


async def test_entering_the_session_greets_once_and_a_return_repeats_the_question(
    rig: Rig,
) -> None:
    result = await rig.pusher.push_enter_session(KID, "contact-button", mode="safe", fmt="json")
    assert result.acknowledged
    [greeting] = await rig.api.wait_for_messages(KID, 1)
    assert "我是倾听" in greeting and "1. 我现在安全" in greeting
    # WeChat's retry of the same event (same CreateTime) changes nothing.
    ct = result.payload["CreateTime"]
    again = await rig.pusher.push_enter_session(KID, mode="plain", fmt="xml", create_time=ct)
    assert again.acknowledged
    await rig.idle()
    assert len(rig.api.messages_to(KID)) == 1
    # The child answers, leaves, and comes back through the contact button a minute later.
    assert "关于谁" in await turn(rig, KID, "1", "safe", "json", 2)
    rig.api.advance(60)
    await rig.pusher.push_enter_session(KID, mode="safe", fmt="json")
    third = (await rig.api.wait_for_messages(KID, 3))[2]
    assert "关于谁" in third and "1. 我自己" in third
    conv = await rig.conversation(KID)
    assert conv is not None
    events = [e["type"] for e in await rig.store.events(conv.id)]
    assert "wechat.session_entered" in events


# ====================================================================== urgent, handoff, volunteer


async def test_an_urgent_message_queues_for_a_volunteer_and_the_child_hears_what_to_do(
    rig: Rig,
) -> None:
    reply = await turn(rig, KID, "我现在就要跳楼了", "safe", "json", 1)
    assert "110" in reply  # emergency numbers first…
    assert "12355" in reply  # …and, nobody being online, the after-hours text, in ONE message
    assert len(rig.api.bodies_to(KID)) == 1
    conv = await rig.conversation(KID)
    assert conv is not None and conv.mode == "waiting"


async def test_a_volunteer_reply_through_send_reaches_the_child(rig: Rig) -> None:
    await turn(rig, KID, "我爸爸打我", "plain", "json", 1)
    await rig.channel.send(KID, [Outbound("hi")])
    assert rig.api.messages_to(KID)[-1] == "hi"


async def test_a_long_text_is_split_at_the_size_limit_in_order(rig: Rig) -> None:
    await turn(rig, KID, "你好", "plain", "json", 1)
    long = "。".join(f"第{i}句话写得很长很长" for i in range(120))
    await rig.channel.send(KID, [Outbound(long)])
    parts = rig.api.messages_to(KID)[1:]
    assert len(parts) >= 2
    assert all(len(p.encode()) <= 2048 for p in parts)
    assert "".join(parts) == long


# ====================================================================== sending errors


async def test_an_expired_token_is_refreshed_once_and_the_send_retried(rig: Rig) -> None:
    await turn(rig, KID, "你好", "plain", "json", 1)
    rig.channel.typing = False  # so that the send itself meets the expired token
    rig.api.advance(7200)  # the cached token expires on WeChat's side
    second = await turn(rig, KID, "1", "plain", "json", 2)
    assert "关于谁" in second
    sends = [r.response.get("errcode") for r in rig.api.requests if r.path == SEND_PATH]
    assert sends == [0, 42001, 0]
    assert rig.api.count(STABLE_TOKEN_PATH) == 2


async def test_a_token_rejected_twice_is_retried_only_once_and_recorded(rig: Rig) -> None:
    await turn(rig, KID, "你好", "plain", "json", 1)
    rig.api.fail_next(SEND_PATH, 40001, times=2)
    with pytest.raises(WeChatAPIError) as info:
        await rig.channel.send(KID, [Outbound("hi")])
    assert info.value.errcode == 40001
    assert rig.api.count(SEND_PATH) == 3  # the first reply, then one try and one retry
    conv = await rig.conversation(KID)
    assert conv is not None and conv.flags["wechat_undelivered"]["errcode"] == 40001


async def test_window_over_45015_is_recorded_on_the_conversation(rig: Rig) -> None:
    await turn(rig, KID, "你好", "plain", "json", 1)
    rig.api.advance(49 * 3600)
    with pytest.raises(WeChatAPIError) as info:
        await rig.channel.send(KID, [Outbound("老师回复：你还好吗？")])
    assert info.value.errcode == 45015
    conv = await rig.conversation(KID)
    assert conv is not None
    assert conv.flags["wechat_undelivered"]["errcode"] == 45015
    assert conv.flags["wechat_reply_blocked"] == "reply_window_closed"
    assert conv.flags["greeted"] is True  # the turn's flags were merged, not overwritten
    events = await rig.store.events(conv.id)
    assert any(e["type"] == "wechat.undelivered" and e["data"]["errcode"] == 45015 for e in events)
    # The child writes again: the window reopens, the reply goes through, the block is lifted.
    await turn(rig, KID, "1", "plain", "json", 2)
    await rig.idle()
    conv = await rig.conversation(KID)
    assert conv is not None and "wechat_reply_blocked" not in conv.flags


async def test_quota_45047_is_recorded_and_nothing_more_is_sent(rig: Rig) -> None:
    await turn(rig, KID, "你好", "plain", "json", 1)  # 1 of 5
    for i in range(4):  # 2..5 of 5
        await rig.channel.send(KID, [Outbound(f"消息 {i}")])
    with pytest.raises(WeChatAPIError) as info:
        await rig.channel.send(KID, [Outbound("第六条")])
    assert info.value.errcode == 45047
    conv = await rig.conversation(KID)
    assert conv is not None
    assert conv.flags["wechat_reply_blocked"] == "reply_quota_used"
    assert "第六条" not in rig.api.messages_to(KID)


# ====================================================================== mini-program login


async def test_login_with_a_single_use_code(rig: Rig) -> None:
    code = rig.api.issue_js_code(KID)
    url = rig.server.make_url("/api/wechat/login")
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"code": code}) as resp:
            assert resp.status == 201
            raw = await resp.text()
        session = json.loads(raw)
        assert KID not in raw
        assert rig.api.session_key(KID) not in raw  # type: ignore[operator]
        assert set(session) == {"session_id", "token", "replies"}
        assert "我是倾听" in session["replies"][0]["text"]
        # The token works on the ordinary web chat API.
        msg_url = rig.server.make_url(f"/api/chat/sessions/{session['session_id']}/messages")
        headers = {"Authorization": f"Bearer {session['token']}"}
        body = {"text": "1", "client_message_id": "m1"}
        async with http.post(msg_url, json=body, headers=headers) as resp:
            assert resp.status == 200
            assert "关于谁" in (await resp.json())["replies"][0]["text"]
        # The same code a second time is refused.
        async with http.post(url, json={"code": code}) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "invalid_code"
        for bad in ({}, {"code": ""}, {"code": 5}):
            async with http.post(url, json=bad) as resp:
                assert resp.status == 400


async def test_two_first_messages_at_once_open_one_conversation(rig: Rig) -> None:
    import asyncio

    await asyncio.gather(
        rig.pusher.push_text("oTWINS", "你好", mode="plain", fmt="json"),
        rig.pusher.push_text("oTWINS", "在吗", mode="plain", fmt="json"),
    )
    await rig.idle()
    conv = await rig.conversation("oTWINS")
    assert conv is not None
    inbound = [m for m in await rig.store.transcript(conv.id) if m.direction == "in"]
    assert len(inbound) == 2  # both messages in the one conversation


async def test_a_replayed_push_with_an_old_timestamp_is_refused(rig: Rig) -> None:
    import json
    import time

    body = json.dumps(
        {
            "ToUserName": "gh_x",
            "FromUserName": "oREPLAY",
            "CreateTime": 1482048670,
            "MsgType": "text",
            "Content": "假冒的话",
            "MsgId": 987654321,
        },
        ensure_ascii=False,
    )
    old = str(int(time.time()) - 3600)  # a URL captured an hour ago, validly signed
    d = await rig.pusher.push_raw(body, params=rig.pusher.signed_params(timestamp=old))
    assert d.status == 403
    assert await rig.conversation("oREPLAY") is None  # nothing stored
    fresh = await rig.pusher.push_raw(body, params=rig.pusher.signed_params())
    assert fresh.status == 200  # the same body with a current timestamp is accepted


@pytest.mark.parametrize("rig_mode", ["safe", "compatible"])
async def test_in_safe_mode_a_correctly_signed_plaintext_push_is_refused(rig: Rig) -> None:
    """The plain signature covers no body: with encryption on, only Encrypt is believed."""
    refused = await rig.pusher.push_text(KID, "有人在吗", mode="plain")
    assert {d.status for d in refused.deliveries} == {403}
    await rig.idle()
    assert await rig.conversation(KID) is None
    ok = await rig.pusher.push_text(KID, "有人在吗", mode="safe")
    assert ok.acknowledged
    assert [m.text for m in await stored_inbound(rig, KID)] == ["有人在吗"]
    assert await rig.api.wait_for_messages(KID, 1)


def test_the_push_mode_follows_the_aes_key_unless_set() -> None:
    from bot.config import ConfigError, Settings

    key = "k" * 43
    base = {
        "QINGTING_WECHAT_APPID": "wx",
        "QINGTING_WECHAT_SECRET": "s",
        "QINGTING_WECHAT_TOKEN": "t",
    }
    assert Settings.from_env(base).wechat.mode == "plain"
    assert Settings.from_env({**base, "QINGTING_WECHAT_AES_KEY": key}).wechat.encrypted_only
    plain = {**base, "QINGTING_WECHAT_AES_KEY": key, "QINGTING_WECHAT_MODE": "plain"}
    assert not Settings.from_env(plain).wechat.encrypted_only
    with pytest.raises(ConfigError, match="needs QINGTING_WECHAT_AES_KEY"):
        Settings.from_env({**base, "QINGTING_WECHAT_MODE": "safe"})
    with pytest.raises(ConfigError, match="plain, compatible or safe"):
        Settings.from_env({**base, "QINGTING_WECHAT_MODE": "secure"})


async def test_shutdown_lets_a_reply_being_worked_on_reach_the_child(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = rig.slow_down_process(monkeypatch)
    rig.api.user_message(KID)
    result = await rig.pusher.push_text(KID, "你好")
    assert result.acknowledged  # stored and acknowledged; the answer is still being worked on
    closing = asyncio.create_task(rig.channel.close(grace=5))
    await asyncio.sleep(0.2)
    release()
    await closing
    assert rig.api.bodies_to(KID)  # not cancelled half-way: the child got the answer


async def test_an_enter_event_that_could_not_be_stored_is_greeted_on_wechats_resend(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = rig.store
    original = store.find_open_conversation
    failures = [ConnectionError("database went away")]

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await original(*args, **kwargs)

    monkeypatch.setattr(store, "find_open_conversation", flaky)
    result = await rig.pusher.push_enter_session(KID, "contact-button", mode="safe", fmt="json")
    assert result.deliveries[0].status == 503  # not acknowledged: WeChat resends
    assert result.acknowledged  # ... and the resend is handled, not taken for a duplicate
    [greeting] = await rig.api.wait_for_messages(KID, 1)
    assert "我是倾听" in greeting
