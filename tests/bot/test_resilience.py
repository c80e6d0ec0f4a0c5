"""Nothing lost: resume after a restart or kill -9, answer what a crash left, refuse bad scripts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from bot.app import PIPELINE, STORE, build_app
from bot.channels.base import Inbound
from bot.config import Settings
from dialogs.errors import ScriptError
from tests.bot.helpers import ChatSession

ROOT = Path(__file__).resolve().parents[2]


async def test_a_conversation_resumes_after_a_restart(aiohttp_client, settings: Settings):
    client = await aiohttp_client(build_app(settings))
    chat = await ChatSession.open(client)
    await chat.say("yes")
    await chat.say("me")
    assert "bully" in chat.options()
    await client.close()

    client2 = await aiohttp_client(build_app(settings))
    chat.client = client2
    await chat.say("bully")  # the new process picks up where the old one stopped
    assert chat.last["replies"][0]["options"] == []  # now asking for the story
    conv = await client2.app[STORE].get_conversation(chat.id)
    assert conv is not None and conv.slots.get("kind") == "bully"


async def test_a_message_stored_but_never_answered_is_answered_at_start(
    aiohttp_client, settings: Settings
) -> None:
    client = await aiohttp_client(build_app(replace(settings, recover_unanswered=False)))
    chat = await ChatSession.open(client)
    # The process stores the message and dies before the turn runs.
    accepted = await client.app[PIPELINE].accept(
        Inbound("web", chat.id, f"{chat.id}:lost", "yes", datetime.now(UTC)),
        conversation_id=chat.id,
    )
    await client.close()

    client2 = await aiohttp_client(build_app(settings))
    store = client2.app[STORE]
    for _ in range(100):
        msg = await store.get_message(accepted.message.id)
        if msg is not None and msg.processed_at is not None:
            break
        await asyncio.sleep(0.05)
    replies = await store.replies_to(accepted.message.id)
    assert replies and "谁" in replies[0].text  # the script moved on: "who is this about?"


async def test_a_broken_script_stops_start_up_with_the_validators_words(settings, tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shipped = (ROOT / "dialogs" / "scripts" / "intake.zh-CN.yaml").read_text(encoding="utf-8")
    assert "next: safe" in shipped
    broken = shipped.replace("next: safe", "next: nowhere", 1)
    (scripts / "intake.zh-CN.yaml").write_text(broken, encoding="utf-8")
    with pytest.raises(ScriptError, match="nowhere"):
        build_app(replace(settings, scripts_dir=scripts))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "QINGTING_VAR_DIR": str(tmp_path / "var"),
        "QINGTING_SECRET_KEY": "kill-test-secret-0123456789",
        "QINGTING_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                async with http.get(base + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server did not become healthy")


async def test_kill_dash_nine_loses_nothing(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port)
    try:
        await _wait_healthy(base, proc)
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/api/chat/sessions", json={}) as r:
                s = await r.json()
            headers = {"Authorization": f"Bearer {s['token']}"}
            url = f"{base}/api/chat/sessions/{s['session_id']}/messages"
            for i, text in enumerate(["yes", "me"]):
                async with http.post(
                    url, json={"text": text, "client_message_id": f"k{i}"}, headers=headers
                ) as r:
                    assert r.status == 200
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        proc = _serve(tmp_path, port)
        await _wait_healthy(base, proc)
        async with aiohttp.ClientSession() as http:
            async with http.post(
                url, json={"text": "bully", "client_message_id": "k2"}, headers=headers
            ) as r:
                assert r.status == 200
                body = await r.json()
        assert body["mode"] == "bot"
        assert body["replies"] and body["replies"][0]["options"] == []  # asks for the story
        assert json.dumps(body)  # a well-formed answer
    finally:
        proc.kill()
        proc.wait(10)
