"""The admin page in real headless Chromium: canned replies, script publishing, report, refusal."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from bot.config import Settings
from bot.keys import HANDOFF
from tests.browser import Server, Watch, app_served, log_in

pytestmark = pytest.mark.browser

DESK: ViewportSize = {"width": 1360, "height": 900}
SHOT = Path("/tmp/qingting-admin.png")
SHOT_REPORT = Path("/tmp/qingting-admin-report.png")
SHOT_CANNED = Path("/tmp/qingting-admin-canned.png")
SHOT_DENIED = Path("/tmp/qingting-admin-denied.png")
ADMIN_PW = "pw-adam-admin-123"
VOLUNTEER_PW = "pw-val-volunteer-1"
OLD_GREETING = "你好，我是倾听。"
NEW_GREETING = "你好呀，这里是倾听，我在听。"
LANGS = ("zh-CN", "zh-TW", "en")


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    """The real application on 127.0.0.1 with an admin (adam) and a volunteer (val)."""
    users = [("adam", "admin", ADMIN_PW), ("val", "volunteer", VOLUNTEER_PW)]
    async with app_served(settings, users) as s:
        yield s


async def open_admin(browser: Browser, server: Server, watch: Watch, name: str, pw: str) -> Page:
    """A desktop browser on /admin, logged in as name."""
    ctx = await browser.new_context(viewport=DESK, locale="zh-CN")
    page = watch.attach(await ctx.new_page())
    await page.goto(server.base + "/admin")
    await log_in(page, name, pw)
    return page


class Api:
    """The console API through aiohttp, logged in as the admin (to check what the page did)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def login(self, name: str, pw: str) -> None:
        """Log in (the cookie stays in this session)."""
        async with self.http.post(
            self.base + "/api/console/login", json={"username": name, "password": pw}
        ) as r:
            assert r.status == 200, await r.text()

    async def get(self, path: str) -> Any:
        """GET path; asserts 200 and returns the JSON."""
        async with self.http.get(self.base + path) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def greeting(self) -> str:
        """What a brand-new zh-CN web chat is greeted with (as a child's page would start one)."""
        async with self.http.post(self.base + "/api/chat/sessions", json={"lang": "zh-CN"}) as r:
            assert r.status == 201, await r.text()
            return "\n".join(x["text"] for x in (await r.json())["replies"])

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.http.close()


@pytest.fixture
async def api(server: Server) -> AsyncIterator[Api]:
    """An aiohttp session logged in as the admin."""
    a = Api(server.base)
    await a.login("adam", ADMIN_PW)
    yield a
    await a.close()


async def test_admin_adds_edits_and_deletes_canned_replies(
    server: Server, browser: Browser, api: Api
) -> None:
    """What the admin types on the page is what GET /api/console/canned returns, per language."""
    seeded = {lang: (await api.get(f"/api/console/canned?lang={lang}"))["canned"] for lang in LANGS}
    watch = Watch(server.base)
    page = await open_admin(browser, server, watch, "adam", ADMIN_PW)
    await expect(page.locator("#me")).to_contain_text("adam")
    items = page.locator("#canned-list li.canned-item")
    await expect(items).to_have_count(len(seeded["zh-CN"]))

    await page.get_by_label("语言", exact=True).select_option("zh-CN")
    await page.get_by_label("标题（志愿者看到的按钮名）").fill("慢慢说")
    await page.get_by_label("内容（发给孩子的话）").fill("不着急，你想到哪里就说到哪里。")
    await page.get_by_role("button", name="添加").click()
    item = items.filter(has_text="慢慢说")
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text("想到哪里就说到哪里")
    await expect(items).to_have_count(len(seeded["zh-CN"]) + 1)
    listed = (await api.get("/api/console/canned?lang=zh-CN"))["canned"]
    added = [c for c in listed if c["title"] == "慢慢说"]
    assert [c["text"] for c in added] == ["不着急，你想到哪里就说到哪里。"]

    # Edit it: same id, new text.
    await item.get_by_role("button", name="编辑：慢慢说").click()
    await expect(page.get_by_label("标题（志愿者看到的按钮名）")).to_have_value("慢慢说")
    await page.screenshot(path=str(SHOT_CANNED))
    await page.get_by_label("内容（发给孩子的话）").fill("不着急，慢慢说，我一直在。")
    await page.get_by_role("button", name="保存修改").click()
    await expect(item).to_contain_text("我一直在")
    edited = (await api.get("/api/console/canned?lang=zh-CN"))["canned"]
    assert len(edited) == len(listed)
    assert [c["text"] for c in edited if c["id"] == added[0]["id"]] == [
        "不着急，慢慢说，我一直在。"
    ]

    # An English one shows under English only, and is deleted after a confirming second click.
    await page.get_by_label("语言", exact=True).select_option("en")
    await page.get_by_label("标题（志愿者看到的按钮名）").fill("Take your time")
    await page.get_by_label("内容（发给孩子的话）").fill("No hurry. I am here.")
    await page.get_by_role("button", name="添加").click()
    await expect(page.locator("#canned-langs [data-lang='en']")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(items).to_have_count(len(seeded["en"]) + 1)
    en = items.filter(has_text="Take your time")
    await expect(en).to_contain_text("No hurry. I am here.")
    assert "Take your time" in titles((await api.get("/api/console/canned?lang=en"))["canned"])
    assert "Take your time" not in titles(
        (await api.get("/api/console/canned?lang=zh-CN"))["canned"]
    )
    await en.get_by_role("button", name="删除：Take your time").click()
    assert "Take your time" in titles((await api.get("/api/console/canned?lang=en"))["canned"])
    await en.get_by_role("button", name="确定删除：Take your time").click()
    await expect(en).to_have_count(0)
    assert (await api.get("/api/console/canned?lang=en"))["canned"] == seeded["en"]
    assert len((await api.get("/api/console/canned?lang=zh-CN"))["canned"]) == len(listed)
    watch.check()


def titles(canned: list[dict[str, Any]]) -> list[str]:
    """Titles of canned replies."""
    return [c["title"] for c in canned]


def line_of(text: str, needle: str) -> int:
    """1-based line number of the first line containing needle."""
    for n, line in enumerate(text.split("\n"), 1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} not in text")


async def caret_line(page: Page) -> int:
    """The line the editor's caret is on (1-based)."""
    return int(
        await page.evaluate(
            "(() => { const t = document.getElementById('script-text');"
            " return t.value.slice(0, t.selectionStart).split('\\n').length; })()"
        )
    )


async def test_admin_publishes_a_script_and_a_broken_one_is_refused_by_line(
    server: Server, browser: Browser, api: Api
) -> None:
    """A published greeting greets the next new chat; a broken edit lists its problems by line,
    moves the caret there on click, and publishes nothing."""
    assert OLD_GREETING in await api.greeting()
    watch = Watch(server.base)
    page = await open_admin(browser, server, watch, "adam", ADMIN_PW)
    await page.get_by_role("tab", name="对话脚本").click()
    shipped_rows = (await api.get("/api/console/scripts"))["uploads"]
    assert shipped_rows and {u["uploaded_by"] for u in shipped_rows} == {"deploy"}
    await expect(page.locator("#scripts-uploads tr")).to_have_count(len(shipped_rows))
    await page.get_by_role("button", name="打开 intake zh-CN").click()
    editor = page.get_by_label("脚本内容（YAML）")
    await expect(editor).to_have_value(re.compile(re.escape(OLD_GREETING)))
    shipped = await editor.input_value()
    before = (await api.get("/api/console/scripts/intake/zh-CN"))["version"]
    await expect(page.locator("#editor-title")).to_contain_text(before)

    # Edit the greeting and publish: the page shows the new version, a NEW chat greets with it.
    await editor.fill(shipped.replace(OLD_GREETING, NEW_GREETING))
    await expect(page.locator("#editor-state")).to_have_text("有未发布的修改")
    await page.get_by_role("button", name="检查并发布").click()
    ok = page.locator("#publish-ok")
    await expect(ok).to_be_visible()
    listed = await api.get("/api/console/scripts")
    new = next(
        c["version"]
        for c in listed["current"]
        if c["script_id"] == "intake" and c["lang"] == "zh-CN"
    )
    assert new != before
    await expect(ok).to_contain_text(new)
    await expect(page.locator("#editor-state")).to_have_text("与当前版本相同")
    greeting = await api.greeting()
    assert NEW_GREETING in greeting and OLD_GREETING not in greeting
    history = page.locator("#scripts-uploads tr")
    await expect(history).to_have_count(len(shipped_rows) + 1)
    newest = history.first  # newest first
    await expect(newest).to_contain_text("adam")
    await expect(newest).to_contain_text(new)
    await expect(newest.locator(".tag")).to_have_text("当前")

    # A broken edit: `next:` to a state that does not exist.
    published = await editor.input_value()
    broken = published.replace("next: safe", "next: nowhere", 1)
    bad_line = line_of(broken, "next: nowhere")
    await editor.fill(broken)
    await page.get_by_role("button", name="检查并发布").click()
    box = page.locator("#problems-box")
    await expect(box).to_be_visible()
    await expect(ok).to_be_hidden()
    await expect(box).to_contain_text("没有发布")
    problem = box.locator("button.problem").filter(has_text="nowhere")
    await expect(problem).to_have_count(1)
    await expect(problem).to_contain_text(f"第 {bad_line} 行")
    await expect(problem).to_contain_text("跳转到不存在的状态")
    await expect(problem).to_contain_text("状态 hello")
    await editor.evaluate("t => { t.focus(); t.setSelectionRange(0, 0); }")
    assert await caret_line(page) == 1
    await problem.click()
    assert await caret_line(page) == bad_line
    await expect(editor).to_be_focused()
    await expect(page.locator("#cursor-pos")).to_have_text(f"第 {bad_line} 行")
    selected = await editor.evaluate("t => t.value.slice(t.selectionStart, t.selectionEnd)")
    assert "next: nowhere" in selected
    # Every problem the server sent is listed, each with its line (or none), none clickable off.
    assert await box.locator("button.problem").count() > 1
    await page.screenshot(path=str(SHOT))

    # Nothing changed on the server: same current version, same greeting, no new upload.
    again = await api.get("/api/console/scripts")
    assert again["current"] == listed["current"]
    assert len(again["uploads"]) == len(shipped_rows) + 1
    greeting = await api.greeting()
    assert NEW_GREETING in greeting
    await expect(page.locator("#editor-state")).to_have_text("有未发布的修改")

    # Going back to what is live undoes the edit on the page only.
    await page.get_by_role("button", name="放弃修改").click()
    await expect(editor).to_have_value(published)
    await expect(box).to_be_hidden()
    watch.check()


async def test_the_report_lists_rules_by_false_alarms_and_flags_low_precision(
    server: Server, browser: Browser
) -> None:
    """Per rule: confirmed, false alarms and precision; most false alarms first; under 50% red."""
    repo = server.app[HANDOFF].repo
    marks = [("lexicon:打死", "physical_abuse", "false_alarm")] * 3 + [
        ("lexicon:打死", "physical_abuse", "confirmed"),
        ("lexicon:想死", "suicide_self_harm", "confirmed"),
        ("lexicon:想死", "suicide_self_harm", "confirmed"),
        ("lexicon:想死", "suicide_self_harm", "false_alarm"),
    ]
    for i, (rule, cat, verdict) in enumerate(marks):
        await repo.mark_hit(1000 + i, 0, rule=rule, category=cat, verdict=verdict, user_id=1)
    watch = Watch(server.base)
    page = await open_admin(browser, server, watch, "adam", ADMIN_PW)
    await page.get_by_role("tab", name="检测报告").click()
    rows = page.locator("#report tr")
    await expect(rows).to_have_count(2)
    first, second = rows.nth(0), rows.nth(1)
    await expect(first.locator("td.rule")).to_have_text("lexicon:打死")
    await expect(first).to_contain_text("身体伤害")
    await expect(first.locator("td.num").nth(0)).to_have_text("1")
    await expect(first.locator("td.num").nth(1)).to_have_text("3")
    await expect(first.locator("td.prec")).to_contain_text("25%")
    await expect(first).to_have_class(re.compile(r"\blow\b"))
    await expect(first.locator(".low-flag")).to_have_text("偏低")
    await expect(second.locator("td.rule")).to_have_text("lexicon:想死")
    await expect(second.locator("td.prec")).to_have_text("67%")
    await expect(second).not_to_have_class(re.compile(r"\blow\b"))
    await page.screenshot(path=str(SHOT_REPORT))
    watch.check()


async def test_a_volunteer_is_refused_the_admin_page(server: Server, browser: Browser) -> None:
    """A volunteer who logs in sees only "需要管理员账号"; the page asks the API for nothing else."""
    watch = Watch(server.base)
    page = await open_admin(browser, server, watch, "val", VOLUNTEER_PW)
    await expect(page.get_by_role("heading", name="需要管理员账号")).to_be_visible()
    await expect(page.locator("#denied")).to_contain_text("val（志愿者）")
    await expect(page.locator("#app")).to_be_hidden()
    await expect(page.get_by_role("tab", name="对话脚本")).to_be_hidden()
    assert [a for a in watch.api if "/login" not in a and "/me" not in a] == []
    await page.screenshot(path=str(SHOT_DENIED))

    # A reload keeps refusing; switching account brings the login form back, and adam gets in.
    await page.reload()
    await expect(page.get_by_role("heading", name="需要管理员账号")).to_be_visible()
    await page.get_by_role("button", name="换一个账号登录").click()
    await expect(page.get_by_label("用户名")).to_be_visible()
    await log_in(page, "adam", ADMIN_PW)
    await expect(page.locator("#me")).to_contain_text("adam")
    await expect(page.locator("#denied")).to_be_hidden()
    watch.check()
