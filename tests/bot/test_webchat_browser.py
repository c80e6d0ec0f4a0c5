"""The web chat page in real headless Chromium, against the real app on a random local port."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    Locator,
    Page,
    Route,
    ViewportSize,
    expect,
)

from bot.app import BUS, CHANNELS, HANDOFF, STORE
from bot.channels.base import Outbound
from bot.channels.webchat import child_topic
from bot.config import Settings
from bot.console.auth import ACCOUNTS
from tests.browser import Server, Watch, app_served

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOT = Path("/tmp/qingting-chat.png")
LEAD_CODE = re.compile(r"^QT-[A-Z0-9]{4,}$")


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    """The real application on 127.0.0.1, port chosen by the OS, in this test's loop."""
    async with app_served(settings) as s:
        yield s


@pytest.fixture
async def page(browser: Browser, server: Server) -> AsyncIterator[Page]:
    """A phone-sized page that fails the test if it requests anything off this server."""
    context = await browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="zh-CN"
    )
    watch = Watch(server.base)
    p = watch.attach(await context.new_page())
    try:
        yield p
    finally:
        await context.close()
    watch.check()


async def open_chat(page: Page, server: Server) -> None:
    """Load the chat and wait for the greeting and the first question."""
    await page.goto(server.base + "/")
    await expect(page.locator("#log .bubble.bot").first).to_contain_text("你好，我是倾听")
    await expect(option(page, "我现在安全")).to_be_visible()


def option(page: Page, label: str) -> Locator:
    """The quick-reply button with exactly this label."""
    return page.locator("#options").get_by_role("button", name=label, exact=True)


async def session_id(page: Page) -> str:
    """The session id the page keeps in sessionStorage."""
    raw = await page.evaluate("sessionStorage.getItem('qt.chat')")
    assert raw, "the page keeps no session"
    return str(json.loads(raw)["id"])


async def last_bot(page: Page, text: str) -> None:
    """Wait until the newest bot bubble says text."""
    await expect(page.locator("#log .bubble.bot").last).to_contain_text(text)


async def test_child_completes_the_intake_by_tapping_and_typing(
    page: Page, server: Server, settings: Settings
) -> None:
    """The whole zh-CN intake ends with a lead code, a closed chat and nothing readable on disk."""
    story = "有同学给我起外号，我不开心"  # a routine (not urgent) worry: the script runs to its end
    district = "海淀区"
    await open_chat(page, server)
    await expect(page.locator("footer")).to_contain_text("110")
    await expect(page.locator("footer")).to_contain_text("12355")

    await option(page, "我现在安全").click()
    await last_bot(page, "这件事是关于谁的？")
    await option(page, "我自己").click()
    await last_bot(page, "是什么样的事呢？")
    await option(page, "被欺负").click()
    await last_bot(page, "能跟我说说发生了什么吗？")
    box = page.get_by_label("写下你想说的话")
    await box.fill(story)
    await box.press("Enter")
    await last_bot(page, "这件事是什么时候发生的？")
    await expect(box).to_have_value("")
    await option(page, "这几天").click()
    await last_bot(page, "大概在哪个区？")
    await box.fill(district)
    await page.get_by_role("button", name="发送").click()
    await last_bot(page, "你想现在和一个人聊聊吗？")
    await option(page, "先不用").click()
    await last_bot(page, story)  # the summary read back
    await expect(option(page, "对的")).to_be_visible()
    await page.screenshot(path=str(SCREENSHOT))
    await option(page, "对的").click()

    await last_bot(page, "照顾好自己。再见！")
    code = (await page.locator(".lead-code").inner_text()).strip()
    assert LEAD_CODE.match(code), code
    await expect(page.get_by_text("聊天已结束")).to_be_visible()
    await expect(page.get_by_role("button", name="重新开始")).to_be_visible()
    await expect(box).to_be_disabled()
    await expect(page.locator("#options button")).to_have_count(0)
    mine = await page.locator("#log .bubble.me .text").all_inner_texts()
    assert mine == ["我现在安全", "我自己", "被欺负", story, "这几天", district, "先不用", "对的"]

    sid = await session_id(page)

    await page.get_by_role("button", name="重新开始").click()
    await expect(page.locator("#log .bubble.me")).to_have_count(0)
    await expect(option(page, "我现在安全")).to_be_visible()
    await expect(box).to_be_enabled()
    assert await session_id(page) != sid

    store = server.app[STORE]
    conv = await store.get_conversation(sid)
    assert conv is not None and conv.mode == "closed"
    assert conv.slots["story"] == story
    transcript = await store.transcript(sid)
    inbound = [m.text for m in transcript if m.direction == "in"]
    assert inbound == ["yes", "me", "bully", story, "recent", district, "no", "ok"]
    assert any(code in m.text for m in transcript if m.direction == "out")
    lead = await store.lead_by_code(code)
    assert lead is not None and lead.conversation_id == sid

    db_path = Path(settings.database_url.split(":///", 1)[1])
    on_disk = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    for typed in (story, district):
        assert typed.encode() not in on_disk, f"the database file holds {typed!r} in plain"


async def test_reload_mid_dialogue_resumes_the_same_session(page: Page, server: Server) -> None:
    """A reload keeps the conversation on screen and goes on where the child was."""
    await open_chat(page, server)
    await option(page, "我现在安全").click()
    await last_bot(page, "这件事是关于谁的？")
    before = await session_id(page)

    await page.reload()
    await expect(page.locator("#log .bubble.me .text")).to_have_text(["我现在安全"])
    await last_bot(page, "这件事是关于谁的？")
    assert await session_id(page) == before
    await option(page, "我自己").click()
    await last_bot(page, "是什么样的事呢？")

    store = server.app[STORE]
    assert [c.id for c in await store.list_conversations()] == [before]
    conv = await store.get_conversation(before)
    assert conv is not None and conv.state == "kind"


async def test_quick_exit_leaves_no_way_back(page: Page, server: Server) -> None:
    """Quick exit shows a neutral page, forgets the session, and Back does not show the chat."""
    await open_chat(page, server)
    await option(page, "我现在安全").click()
    await last_bot(page, "这件事是关于谁的？")

    await page.get_by_role("button", name="快速离开").click()
    await page.wait_for_url(server.base + "/exit")
    html = await page.content()
    for trace in ("倾听", "傾聽", "Qingting", "110", "12355", "chat"):
        assert trace not in html
    assert await page.evaluate("sessionStorage.length") == 0

    await page.go_back()
    assert page.url != server.base + "/"
    assert "这件事是关于谁的？" not in await page.content()


async def test_urgent_message_shows_emergency_numbers_and_waiting(
    page: Page, server: Server
) -> None:
    """'I don't want to live' brings 110/120 at once and says a person is coming; then one does."""
    await open_chat(page, server)
    await expect(page.locator("body")).to_have_attribute("data-ws", "open")
    box = page.get_by_label("写下你想说的话")
    await box.fill("我不想活了，今晚就跳下去")
    await box.press("Enter")

    bots = page.locator("#log .bubble.bot")
    await expect(bots.filter(has_text="110")).not_to_have_count(0)
    await expect(bots.filter(has_text="120")).not_to_have_count(0)
    await expect(page.locator("#banner")).to_contain_text("老师正在赶来")
    await expect(page.locator("body")).to_have_attribute("data-mode", "waiting")
    await expect(box).to_be_enabled()
    for number in ("110", "120", "12355"):
        await expect(page.locator(f"footer a[href='tel:{number}']")).to_be_visible()

    # A volunteer joins: the page hears it over the WebSocket.
    sid = await session_id(page)
    await server.app[BUS].publish(child_topic(sid), {"type": "mode", "mode": "human"})
    await expect(page.locator("#banner")).to_contain_text("正在和老师聊天")
    await server.app[CHANNELS]["web"].send(sid, [Outbound("我是老师，我在这里陪你。")])
    await expect(page.locator("#log .bubble.person")).to_contain_text("我是老师，我在这里陪你。")


async def test_lost_request_is_retried_with_the_same_id(page: Page, server: Server) -> None:
    """A send whose answer is lost goes again with the same id; the server stores it once."""
    bodies: list[dict[str, str]] = []
    dropped = False

    async def flaky(route: Route) -> None:
        nonlocal dropped
        bodies.append(json.loads(route.request.post_data or "{}"))
        if not dropped:  # the server gets and answers it; the answer is lost on the way back
            dropped = True
            await route.fetch()
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await open_chat(page, server)
    await page.route("**/messages", flaky)
    await option(page, "我现在安全").click()
    await last_bot(page, "这件事是关于谁的？")

    assert len(bodies) == 2
    assert bodies[0] == bodies[1]  # same text, same client_message_id
    assert bodies[0]["text"] == "yes" and bodies[0]["client_message_id"]
    await expect(page.locator("#log .bubble.me .state")).to_have_count(0)
    transcript = await server.app[STORE].transcript(await session_id(page))
    assert [m.text for m in transcript if m.direction == "in"] == ["yes"]


async def test_a_session_the_server_no_longer_accepts_is_replaced(
    page: Page, server: Server
) -> None:
    """If the kept token stops working, the page says so kindly and starts a fresh chat."""
    await open_chat(page, server)
    old = await session_id(page)
    tamper = (
        "() => { const s = JSON.parse(sessionStorage.getItem('qt.chat'));"
        " s.token = 'not-the-token'; sessionStorage.setItem('qt.chat', JSON.stringify(s)); }"
    )
    kept = "() => JSON.parse(sessionStorage.getItem('qt.chat')).token === 'not-the-token'"
    # The page saves its state again when a late socket frame arrives: tamper until it stays.
    for _ in range(20):
        await page.evaluate(tamper)
        await page.wait_for_timeout(100)
        if await page.evaluate(kept):
            break
    await page.reload()
    await expect(page.locator("#notice")).to_contain_text("我们重新开始吧")
    await expect(option(page, "我现在安全")).to_be_visible()
    assert await session_id(page) != old
    await option(page, "我现在安全").click()
    await last_bot(page, "这件事是关于谁的？")


async def urgent_and_waiting(page: Page, server: Server) -> str:
    """Open the chat, write an urgent message, wait for 'a person is coming'; the session id."""
    await open_chat(page, server)
    box = page.get_by_label("写下你想说的话")
    await box.fill("我不想活了，今晚就跳下去")
    await box.press("Enter")
    await expect(page.locator("body")).to_have_attribute("data-mode", "waiting")
    return await session_id(page)


async def test_volunteer_words_sent_while_the_page_was_away_appear_on_return(
    page: Page, server: Server
) -> None:
    """A volunteer accepts and writes while the child's page is closed: back, the child sees it."""
    sid = await urgent_and_waiting(page, server)
    await page.goto("about:blank")  # the socket closes; sessionStorage stays with the tab

    user = await server.app[ACCOUNTS].add_user("lin", "volunteer", "a-long-test-password-1")
    handoff = server.app[HANDOFF]
    await handoff.accept(sid, user.id, user.username)
    await handoff.send(sid, user.id, "我是老师，我看到你写的了。")

    await page.goto(server.base + "/")
    await expect(page.locator("#log .bubble.person")).to_contain_text("我是老师，我看到你写的了。")
    await expect(page.locator("#log .bubble.bot .text").first).to_contain_text("你好，我是倾听")
    await expect(page.locator("#log .bubble.me .text")).to_have_text(["我不想活了，今晚就跳下去"])
    await expect(page.locator("body")).to_have_attribute("data-mode", "human")
    await expect(page.locator("#banner")).to_contain_text("正在和老师聊天")
    assert await session_id(page) == sid


async def test_a_bus_resync_brings_what_the_socket_missed(page: Page, server: Server) -> None:
    """Words stored but never pushed show up when the socket says the bus lost events."""
    sid = await urgent_and_waiting(page, server)
    await expect(page.locator("body")).to_have_attribute("data-ws", "open")
    async with server.app[STORE].turn(sid) as turn:  # stored, never published
        await turn.update(mode="human")
        await turn.add_outbound("我在这里陪你。", sender="volunteer:1")
    await expect(page.locator("#log .bubble.person")).to_have_count(0)

    await server.app[BUS].publish(child_topic(sid), {"type": "bus.resync"})
    await expect(page.locator("#log .bubble.person")).to_contain_text("我在这里陪你。")
    await expect(page.locator("body")).to_have_attribute("data-mode", "human")


async def test_a_refused_session_offers_a_restart_and_keeps_what_was_written(
    page: Page, server: Server
) -> None:
    """Creating the session gets 400: Send does not vanish the words; restart sends them."""

    async def refuse(route: Route) -> None:
        if route.request.method == "POST":
            await route.fulfill(status=400, json={"error": {"code": "bad", "message": "no"}})
        else:
            await route.continue_()

    await page.route("**/api/chat/sessions", refuse)
    await page.goto(server.base + "/")
    restart = page.get_by_role("button", name="重新开始")
    await expect(restart).to_be_visible()
    box = page.get_by_label("写下你想说的话")
    await box.fill("有人欺负我")  # still refused: the words wait in a bubble, not lost
    await box.press("Enter")
    await expect(page.locator("#log .bubble.me .text")).to_have_text(["有人欺负我"])
    await expect(restart).to_be_visible()

    await page.unroute("**/api/chat/sessions", refuse)
    await restart.click()
    await expect(page.locator("#log .bubble.bot").first).to_contain_text("你好，我是倾听")
    await expect(page.locator("#log .bubble.me .state")).to_have_count(0)
    await expect(page.locator("#log .bubble.me .text")).to_have_text(["有人欺负我"])
    transcript = await server.app[STORE].transcript(await session_id(page))
    assert [m.text for m in transcript if m.direction == "in"] == ["有人欺负我"]
