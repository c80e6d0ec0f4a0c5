"""Admins edit dialogue scripts without a deploy; broken uploads change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import build_app
from bot.console.auth import ACCOUNTS
from tests.bot.helpers import ChatSession
from tests.console.helpers import PASSWORD, Console

SHIPPED = (Path(__file__).resolve().parents[2] / "dialogs/scripts/intake.zh-CN.yaml").read_text(
    encoding="utf-8"
)
OLD_GREETING = "你好，我是倾听。"
NEW_GREETING = "你好呀，这里是倾听。"


@pytest.fixture
async def admin(aiohttp_client, settings):
    client = await aiohttp_client(build_app(settings))
    await client.app[ACCOUNTS].add_user("adam", "admin", PASSWORD)
    await client.app[ACCOUNTS].add_user("val", "volunteer", PASSWORD)
    console = Console(client)
    await console.login("adam")
    yield client, console
    await console.close()


async def test_an_upload_goes_live_for_new_chats_and_old_chats_keep_their_version(admin) -> None:
    client, console = admin
    assert OLD_GREETING in SHIPPED
    before = await ChatSession.open(client)
    assert any(OLD_GREETING in r["text"] for r in before.greeting)

    status, body = await console.post(
        "/api/console/scripts", {"yaml": SHIPPED.replace(OLD_GREETING, NEW_GREETING)}
    )
    assert status == 201 and body["script_id"] == "intake" and body["lang"] == "zh-CN"

    after = await ChatSession.open(client)
    assert any(NEW_GREETING in r["text"] for r in after.greeting)
    await before.say("yes")  # the older chat goes on, pinned to the version it started on
    assert "me" in before.options()
    _, listed = await console.get("/api/console/scripts")
    assert {"script_id": "intake", "lang": "zh-CN", "version": body["version"]} in listed["current"]
    _, current = await console.get("/api/console/scripts/intake/zh-CN")
    assert NEW_GREETING in current["yaml"]


async def test_a_broken_upload_is_refused_with_the_problems_and_changes_nothing(admin) -> None:
    client, console = admin
    broken = SHIPPED.replace("next: safe", "next: nowhere", 1)
    status, body = await console.post("/api/console/scripts", {"yaml": broken})
    assert status == 422 and body["error"]["code"] == "invalid_script"
    assert any("nowhere" in p["message"] for p in body["error"]["problems"])
    assert all(p["line"] for p in body["error"]["problems"])
    for junk in ("::: not yaml", "\x00\x01", "[1, 2]"):
        status, body = await console.post("/api/console/scripts", {"yaml": junk})
        assert status == 422, junk
    chat = await ChatSession.open(client)
    assert any(OLD_GREETING in r["text"] for r in chat.greeting)


async def test_only_admins_edit_scripts(admin) -> None:
    client, _ = admin
    val = Console(client)
    await val.login("val")
    try:
        assert (await val.post("/api/console/scripts", {"yaml": SHIPPED}))[0] == 403
        assert (await val.get("/api/console/scripts"))[0] == 403
    finally:
        await val.close()


async def test_an_upload_survives_a_restart(aiohttp_client, settings) -> None:
    client = await aiohttp_client(build_app(settings))
    await client.app[ACCOUNTS].add_user("adam", "admin", PASSWORD)
    console = Console(client)
    await console.login("adam")
    status, _ = await console.post(
        "/api/console/scripts", {"yaml": SHIPPED.replace(OLD_GREETING, NEW_GREETING)}
    )
    assert status == 201
    await console.close()
    await client.close()
    client2 = await aiohttp_client(build_app(settings))
    chat = await ChatSession.open(client2)
    assert any(NEW_GREETING in r["text"] for r in chat.greeting)


async def test_a_revert_to_an_earlier_version_survives_a_restart(aiohttp_client, settings) -> None:
    client = await aiohttp_client(build_app(settings))
    await client.app[ACCOUNTS].add_user("adam", "admin", PASSWORD)
    console = Console(client)
    await console.login("adam")
    first = SHIPPED.replace(OLD_GREETING, NEW_GREETING)
    second = SHIPPED.replace(OLD_GREETING, "嗨，这里是倾听。")
    for text in (first, second, first):  # the last upload reverts to the first edit
        assert (await console.post("/api/console/scripts", {"yaml": text}))[0] == 201
    await console.close()
    await client.close()
    client2 = await aiohttp_client(build_app(settings))
    chat = await ChatSession.open(client2)
    assert any(NEW_GREETING in r["text"] for r in chat.greeting)


async def test_a_newer_shipped_script_wins_over_an_older_upload(
    aiohttp_client, settings, tmp_path
) -> None:
    from dataclasses import replace

    client = await aiohttp_client(build_app(settings))
    await client.app[ACCOUNTS].add_user("adam", "admin", PASSWORD)
    console = Console(client)
    await console.login("adam")
    edited = SHIPPED.replace(OLD_GREETING, NEW_GREETING)
    assert (await console.post("/api/console/scripts", {"yaml": edited}))[0] == 201
    await console.close()
    await client.close()

    # A restart with the same shipped scripts keeps the admin's edit...
    client2 = await aiohttp_client(build_app(settings))
    chat = await ChatSession.open(client2)
    assert any(NEW_GREETING in r["text"] for r in chat.greeting)
    await client2.close()

    # ...but a deploy that ships a fixed script makes the fix current.
    fixed_dir = tmp_path / "deploy"
    fixed_dir.mkdir()
    fixed = SHIPPED.replace(OLD_GREETING, "你好，这里是倾听，新版本。")
    (fixed_dir / "intake.zh-CN.yaml").write_text(fixed, encoding="utf-8")
    client3 = await aiohttp_client(build_app(replace(settings, scripts_dir=fixed_dir)))
    chat = await ChatSession.open(client3)
    assert any("新版本" in r["text"] for r in chat.greeting)


async def test_a_process_that_missed_an_upload_loads_it_on_the_bus_resync(
    aiohttp_client, settings
) -> None:
    from bot.console.scripts_api import on_scripts_event
    from handoff.bus import RESYNC_TOPIC, Event

    uploader = await aiohttp_client(build_app(settings))
    other = await aiohttp_client(build_app(settings))  # a second process on the same database
    await uploader.app[ACCOUNTS].add_user("adam", "admin", PASSWORD)
    console = Console(uploader)
    await console.login("adam")
    status, _ = await console.post(
        "/api/console/scripts", {"yaml": SHIPPED.replace(OLD_GREETING, NEW_GREETING)}
    )
    assert status == 201
    await console.close()
    # Each app has its own in-process bus, so `other` never heard of the upload: as after a
    # Redis reconnect. The bus then tells it to resync.
    stale = await ChatSession.open(other)
    assert any(OLD_GREETING in r["text"] for r in stale.greeting)
    await on_scripts_event(other.app, Event(RESYNC_TOPIC, {"reason": "reconnected"}))
    fresh = await ChatSession.open(other)
    assert any(NEW_GREETING in r["text"] for r in fresh.greeting)
