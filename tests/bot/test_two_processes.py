"""Two serve processes on one database: a new child's first messages open one conversation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from bot.channels.base import Inbound
from bot.pipeline import Pipeline
from dialogs import DialogEngine, ScriptLibrary
from storage.crypto import Vault
from storage.store import Store

SECRET = "two-processes-test-secret-01234"
ROUNDS = 8


def _unused(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("accept() neither assesses nor hands off")


async def test_two_processes_open_one_conversation_for_a_new_child(database_url: str) -> None:
    # Two engines on one database, as two processes have: neither shares the other's locks.
    stores = [Store.open(database_url, Vault(SECRET)) for _ in range(2)]
    library = ScriptLibrary.load_dir()
    pipelines = [Pipeline(s, DialogEngine(library), _unused, _unused) for s in stores]
    try:
        for n in range(ROUNDS):
            address = f"openid-new-{n}"
            now = datetime.now(UTC)
            accepted = await asyncio.gather(
                *(
                    p.accept(Inbound("wechat", address, f"{n}-{i}", f"第{i}句", now))
                    for i, p in enumerate(pipelines)
                )
            )
            reporter = stores[0].vault.pseudonym("wechat", address)
            async with stores[0].engine.connect() as c:
                rows = (
                    await c.execute(
                        text("SELECT id, mode FROM conversations WHERE reporter_id = :r"),
                        {"r": reporter},
                    )
                ).all()
            assert len(rows) == 1, f"round {n}: {len(rows)} conversations for one child"
            (cid, mode) = rows[0]
            assert mode != "closed"
            assert {a.conversation_id for a in accepted} == {cid}
            assert sorted(m.text for m in await stores[1].transcript(cid)) == ["第0句", "第1句"]
    finally:
        for s in stores:
            await s.close()
