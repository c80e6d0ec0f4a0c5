"""`qingting chat`: the real pipeline and database, with the terminal as the channel."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from typing import TextIO

import nlp
from bot.app import load_library
from bot.channels.base import Inbound, Outbound, as_numbered_text
from bot.config import Settings, open_store
from bot.console.scripts_api import add_uploads
from bot.pipeline import ConversationClosed, Pipeline
from dialogs import DialogEngine
from handoff.bus import create_bus
from handoff.service import HandoffService
from storage.migrate import upgrade


def show(messages: list[Outbound], out: TextIO) -> None:
    """Print bot messages with options as a numbered list."""
    for m in messages:
        out.write("倾听> " + as_numbered_text(m).replace("\n", "\n      ") + "\n")
    out.flush()


async def run_terminal_chat(
    settings: Settings,
    *,
    lang: str = "zh-CN",
    script: str = "intake",
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Chat until end of input or the script ends; returns an exit code."""
    inp, out = stdin or sys.stdin, stdout or sys.stdout
    await upgrade(settings.database_url)
    store = open_store(settings)
    bus = create_bus(None)
    await bus.start()
    try:

        async def nowhere(_conv: object, _texts: object) -> None:
            """The terminal has no late replies: nobody can take over a terminal chat."""

        handoff = HandoffService(store, bus, nowhere)
        # The scripts `serve` would use: shipped, QINGTING_SCRIPTS_DIR, then admins' uploads.
        library = load_library(settings)
        await add_uploads(library, store)
        pipeline = Pipeline(store, DialogEngine(library), nlp.assess, handoff)
        address = f"tty-{uuid.uuid4().hex[:12]}"
        conv, greeting = await pipeline.start_conversation(
            "cli", address, script_id=script, lang=lang, conversation_id=uuid.uuid4().hex
        )
        show(greeting, out)
        n = 0
        while True:
            out.write("你> ")
            out.flush()
            line = await asyncio.to_thread(inp.readline)
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            n += 1
            inbound = Inbound("cli", address, f"{conv.id}:{n}", text, datetime.now(UTC))
            try:
                accepted = await pipeline.accept(inbound, conversation=conv)
                replies, mode = await pipeline.respond(accepted)
            except ConversationClosed:
                break
            show(replies, out)
            if mode == "closed":
                break
        out.write("\n(聊天结束 / chat ended)\n")
        return 0
    finally:
        await bus.close()
        await store.close()
