"""The volunteer console in real headless Chromium: two volunteers, one child, one live handoff."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Route,
    ViewportSize,
    expect,
)

from bot.config import Settings
from bot.console.auth import ACCOUNTS
from bot.keys import BUS, HANDOFF, STORE
from handoff.service import volunteer_topic
from tests.browser import Server, Watch, app_served, log_in

pytestmark = pytest.mark.browser
T = TypeVar("T")

DESK: ViewportSize = {"width": 1360, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
SHOT_CONSOLE = Path("/tmp/qingting-console.png")
SHOT_QUEUE = Path("/tmp/qingting-console-queue.png")
SHOT_LEADS = Path("/tmp/qingting-console-leads.png")
SHOT_CHILD = Path("/tmp/qingting-console-child.png")
LEAD_CODE = re.compile(r"QT-[A-Z0-9]{4,}")
URGENT = "我不想活了，我今晚就想吃药"
ANSWER = "我好害怕，我还是想死"
REPLY = "我是志愿者，我在这里陪着你。你现在身边有大人吗？"


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    """The real application on 127.0.0.1, port chosen by the OS, with two volunteers."""
    users = [("alice", "volunteer", "pw-alice-123456"), ("bob", "volunteer", "pw-bob-1234567")]
    async with app_served(settings, users) as s:
        yield s


async def volunteer(browser: Browser, server: Server, watch: Watch, name: str, pw: str) -> Page:
    """A desktop console logged in as name, its WebSocket open."""
    ctx: BrowserContext = await browser.new_context(
        viewport=DESK, locale="zh-CN", permissions=["notifications"]
    )
    page = watch.attach(await ctx.new_page())
    await page.goto(server.base + "/console")
    await log_in(page, name, pw)
    await expect(page.locator("#me")).to_contain_text(name)
    await expect(page.locator("body")).to_have_attribute("data-ws", "open")
    await expect(page.locator("#queue-empty")).to_be_visible()
    user_id = {u.username: u.id for u in await server.app[ACCOUNTS].users()}[name]

    async def online() -> bool:
        return any(p.user_id == user_id for p in await server.app[HANDOFF].online())

    assert await eventually(online, True)  # offers go to volunteers the server sees online
    return page


async def eventually(get: Callable[[], Awaitable[T]], want: T, seconds: float = 5.0) -> bool:
    """Poll get() until it returns want (server state that follows a browser action)."""
    for _ in range(int(seconds / 0.05)):
        if await get() == want:
            return True
        await asyncio.sleep(0.05)
    return await get() == want


async def probe(page: Page, key: str) -> int:
    """A counter the console exposes for tests (offers, sound, notification)."""
    return int(await page.evaluate(f"window.qtConsole.{key}"))


async def test_urgent_child_is_offered_to_both_accepted_by_one_and_closed_with_a_lead(
    server: Server, browser: Browser
) -> None:
    """Both consoles are alerted; alice wins, bob loses it (409); the exchange is live both
    ways with the hit highlighted; closing as criminal gives the child and the leads tab a code."""
    watch = Watch(server.base)
    alice = await volunteer(browser, server, watch, "alice", "pw-alice-123456")
    bob = await volunteer(browser, server, watch, "bob", "pw-bob-1234567")

    child_ctx = await browser.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN")
    child = watch.attach(await child_ctx.new_page())
    await child.goto(server.base + "/")
    await expect(child.locator("#log .bubble.bot").first).to_contain_text("你好，我是倾听")
    await expect(child.locator("body")).to_have_attribute("data-ws", "open")
    box = child.get_by_label("写下你想说的话")
    await box.fill(URGENT)
    await box.press("Enter")
    await expect(child.locator("#log .bubble.bot").filter(has_text="110")).not_to_have_count(0)

    # Both consoles: the offer is in the queue, highlighted, marked imminent, with an alert.
    for page in (alice, bob):
        card = page.locator("#queue li.card")
        await expect(card).to_have_count(1)
        await expect(card).to_have_class(re.compile(r"\boffered\b"))
        await expect(card).to_have_class(re.compile(r"\brisk-imminent\b"))
        await expect(card.locator(".risk")).to_have_text("危急")
        await expect(card).to_contain_text("自杀/自伤")
        await expect(card).to_contain_text("已等待")
        assert await probe(page, "offers") >= 1
        assert await probe(page, "sound") >= 1, "the offer beep did not run"
        assert await probe(page, "notification") >= 1, await page.evaluate(
            "window.qtConsole.notificationError"
        )
    assert "有孩子在等待" in await bob.title()
    await bob.screenshot(path=str(SHOT_QUEUE))

    # alice accepts; the card leaves bob's queue, and bob's own accept is refused.
    await alice.locator("#queue li.card").get_by_role("button", name=re.compile("接单")).click()
    await expect(alice.locator("#conv")).to_be_visible()
    await expect(alice.locator("#transcript li.msg.child").first).to_contain_text(URGENT)
    await expect(bob.locator("#queue li.card")).to_have_count(0)
    await expect(alice.locator("#queue li.card")).to_have_count(0)
    await expect(alice.locator("#mine .mine-item")).to_have_count(1)
    conv_id = await alice.locator("#mine .mine-item").get_attribute("data-id")
    assert conv_id
    status = await bob.evaluate(
        """async (id) => {
            const me = await (await fetch('/api/console/me')).json();
            const r = await fetch('/api/console/conversations/' + id + '/accept', {
                method: 'POST', headers: {'X-CSRF-Token': me.csrf_token}});
            return r.status;
        }""",
        conv_id,
    )
    assert status == 409

    # The first message's hits are highlighted where the detector found them.
    first = alice.locator("#transcript li.msg.child").first
    await expect(first.locator("mark.hit").first).to_contain_text("不想活了")

    # alice replies by typing; the child reads it.
    reply = alice.get_by_label("回复孩子")
    await reply.fill(REPLY)
    await reply.press("Enter")
    await expect(reply).to_have_value("")
    await expect(alice.locator("#transcript li.msg.volunteer")).to_contain_text(REPLY)
    await expect(child.locator("#log .bubble").filter(has_text=REPLY)).to_have_count(1)

    # Had the child's channel refused it, alice would see it marked (the service's event).
    mine = alice.locator("#transcript li.msg.volunteer").filter(has_text=REPLY)
    reply_id = int(await mine.get_attribute("data-id") or 0)
    alice_id = {u.username: u.id for u in await server.app[ACCOUNTS].users()}["alice"]
    await server.app[BUS].publish(
        volunteer_topic(alice_id),
        {"type": "delivery.failed", "conversation_id": conv_id, "message_id": reply_id},
    )
    await expect(mine.locator(".undelivered")).to_have_text("未送达")
    await expect(alice.locator("#toast")).to_contain_text("没有送到孩子那里")

    # The child answers; alice sees it live, the risk words highlighted, and marks the hit.
    await box.fill(ANSWER)
    await box.press("Enter")
    answer = alice.locator("#transcript li.msg.child").filter(has_text=ANSWER)
    await expect(answer).to_have_count(1)
    mark = answer.locator("mark.hit").filter(has_text=re.compile("^想死$"))
    await expect(mark).to_have_count(1)  # other words may be hits too, as the lexicon grows
    assert "lexicon:想死" in (await mark.get_attribute("title") or "")
    await mark.click()
    row = answer.locator("ul.hits li").filter(has_text="lexicon:想死")
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("自杀/自伤")
    await row.get_by_role("button", name="属实").click()
    await expect(row.locator(".verdict")).to_have_text("已标：属实")
    await alice.screenshot(path=str(SHOT_CONSOLE))
    msg_id = int(await answer.get_attribute("data-id") or 0)
    marks = await server.app[HANDOFF].repo.hit_marks([msg_id])
    assert list(marks.values()) == ["confirmed"], marks

    # alice ends the chat as criminal; the child gets the closing words and the lead code.
    await alice.get_by_role("button", name="结束会话").click()
    await alice.get_by_label("类别").select_option("criminal")
    await alice.get_by_label("摘要").fill("孩子有自杀念头，今晚有风险，已安抚并建议联系大人")
    await alice.get_by_role("button", name="确认结束并生成线索").click()
    result = alice.locator("#lead-result")
    await expect(result).to_contain_text("线索编号")
    code = (await result.locator(".lead-code").inner_text()).strip()
    assert LEAD_CODE.fullmatch(code), code
    await expect(result).to_contain_text("刑事")
    await expect(alice.get_by_label("回复孩子")).to_be_disabled()
    await expect(alice.locator("#mine .mine-item")).to_have_count(0)
    closing = child.locator("#log .bubble").filter(has_text="这次聊天结束了")
    await expect(closing).to_have_count(1)
    await expect(closing.locator(".lead-code")).to_have_text(code)
    await child.screenshot(path=str(SHOT_CHILD))

    # The lead is in alice's leads tab, and moves one step along the work-order cycle.
    await alice.get_by_role("tab", name="线索").click()
    lead_row = alice.locator(f"#leads tr[data-code='{code}']")
    await expect(lead_row).to_contain_text("刑事")
    await expect(lead_row.locator(".state")).to_have_text("受理")
    await lead_row.get_by_label("说明").fill("已转派出所")
    await lead_row.get_by_role("button", name="→ 派单").click()
    await expect(lead_row.locator(".state")).to_have_text("派单")
    await alice.screenshot(path=str(SHOT_LEADS))

    lead = await server.app[STORE].lead_by_code(code)
    assert lead is not None
    assert lead.conversation_id == conv_id
    assert (lead.category, lead.state) == ("criminal", "dispatched")
    conv = await server.app[STORE].get_conversation(conv_id)
    assert conv is not None and conv.mode == "closed"
    watch.check()


async def test_accepting_a_chat_someone_else_just_took_says_so_and_drops_the_card(
    server: Server, browser: Browser
) -> None:
    """bob clicks 接单 before his queue caught up with alice's accept: a clear 409 message."""
    watch = Watch(server.base)
    alice = await volunteer(browser, server, watch, "alice", "pw-alice-123456")
    bob = await volunteer(browser, server, watch, "bob", "pw-bob-1234567")

    # bob's queue answers are frozen at the moment he saw the card: he is a moment behind.
    seen: list[str] = []
    frozen = False

    async def lagging(route: Route) -> None:
        if frozen and seen:
            await route.fulfill(body=seen[-1], content_type="application/json")
            return
        response = await route.fetch()
        seen.append(await response.text())
        await route.fulfill(response=response)

    async def catching_up(route: Route) -> None:
        nonlocal frozen
        frozen = False  # the server's 409 is news: from here on bob's queue is current again
        await route.continue_()

    await bob.route("**/api/console/queue", lagging)
    await bob.route("**/accept", catching_up)

    async with aiohttp.ClientSession(server.base) as http:
        resp = await http.post("/api/chat/sessions", json={})
        session = await resp.json()
        resp = await http.post(
            f"/api/chat/sessions/{session['session_id']}/messages",
            json={"text": URGENT, "client_message_id": "c1"},
            headers={"Authorization": f"Bearer {session['token']}"},
        )
        assert (await resp.json())["mode"] == "waiting"
    sid = session["session_id"]

    for page in (alice, bob):
        await expect(page.locator(f"#queue li.card[data-id='{sid}']")).to_have_count(1)

    async def bob_saw_it() -> bool:
        return any(sid in body for body in seen)

    assert await eventually(bob_saw_it, True)  # bob's page fetched the queue showing the card
    frozen = True

    await alice.locator("#queue li.card").get_by_role("button", name=re.compile("接单")).click()
    await expect(alice.locator("#conv")).to_be_visible()
    conv = await server.app[STORE].get_conversation(sid)
    assert conv is not None and conv.mode == "human"
    await expect(bob.locator(f"#queue li.card[data-id='{sid}']")).to_have_count(1)  # stale

    await bob.locator("#queue li.card").get_by_role("button", name=re.compile("接单")).click()
    await expect(bob.locator("#toast")).to_have_text("已被其他志愿者接走")
    await expect(bob.locator("#queue li.card")).to_have_count(0)
    await expect(bob.locator("#conv")).to_be_hidden()
    await expect(bob.locator("#mine .mine-item")).to_have_count(0)
    conv = await server.app[STORE].get_conversation(sid)
    assert conv is not None and conv.mode == "human"
    by_name = {u.username: u.id for u in await server.app[ACCOUNTS].users()}
    assert conv.assigned_to == by_name["alice"]
    watch.check()


async def test_login_survives_a_reload_presence_toggles_and_logout_ends_the_session(
    server: Server, browser: Browser
) -> None:
    """A wrong password is refused kindly; a reload stays logged in; away/available reach the
    server; logging out returns to the form and the old session no longer works."""
    watch = Watch(server.base)
    ctx = await browser.new_context(viewport=DESK, locale="zh-CN")
    page = watch.attach(await ctx.new_page())
    await page.goto(server.base + "/console")
    await log_in(page, "alice", "not-her-password")
    await expect(page.locator("#login-error")).to_have_text("用户名或密码不对。")
    await expect(page.locator("#app")).to_be_hidden()

    await page.get_by_label("密码").fill("pw-alice-123456")
    await page.get_by_role("button", name="登录").click()
    await expect(page.locator("body")).to_have_attribute("data-ws", "open")
    await page.reload()
    await expect(page.locator("#me")).to_have_text("alice")
    await expect(page.locator("body")).to_have_attribute("data-ws", "open")
    alice_id = {u.username: u.id for u in await server.app[ACCOUNTS].users()}["alice"]

    async def status() -> str | None:
        online = {p.user_id: p.status for p in await server.app[HANDOFF].online()}
        return online.get(alice_id)

    assert await eventually(status, "available")  # the socket's first heartbeat
    await page.get_by_role("button", name="接单中").click()
    await expect(page.locator("#presence")).to_have_text("暂离")
    assert await eventually(status, "away")
    await page.get_by_role("button", name="暂离").click()
    await expect(page.locator("#presence")).to_have_text("接单中")
    assert await eventually(status, "available")

    await page.get_by_role("button", name="退出登录").click()
    await expect(page.locator("#login")).to_be_visible()
    assert await page.evaluate("fetch('/api/console/me').then(r => r.status)") == 401
    await page.reload()
    await expect(page.get_by_label("用户名")).to_be_visible()
    await expect(page.locator("#app")).to_be_hidden()
    watch.check()
