"""Migrations that change data: what 0006 does to a database holding duplicate open chats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.crypto import Vault
from storage.migrate import upgrade
from storage.store import ConversationAlreadyOpen, Store
from storage.views import ConversationView
from tests.conftest import (
    POSTGRES_URL,
    create_postgres_database,
    drop_postgres_database,
    need,
    new_conversation,
)

SECRET = "migration-test-secret-012345678"


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty, unmigrated database on each backend (PostgreSQL only when configured)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/old.db"
        return
    base = need(POSTGRES_URL, "QINGTING_TEST_POSTGRES_URL")
    url = await create_postgres_database(base)
    try:
        yield url
    finally:
        await drop_postgres_database(base, url)


async def _conv(store: Store, address: str) -> ConversationView:
    view: ConversationView = await new_conversation(store, address)
    return view


async def test_0006_closes_older_duplicate_open_conversations_then_refuses_new_ones(
    empty_url: str,
) -> None:
    await upgrade(empty_url, "0005")  # before the index: two processes could open two
    store = Store.open(empty_url, Vault(SECRET))
    try:
        ended = await _conv(store, "child")
        async with store.turn(ended.id) as turn:
            await turn.update(mode="closed")
        held = await _conv(store, "child")  # older duplicate, held by volunteer 7
        async with store.turn(held.id) as turn:
            await turn.assign(7)
            await turn.update(mode="human")
        older = await _conv(store, "child")
        newest = await _conv(store, "child")
        other = await _conv(store, "another child")

        await upgrade(empty_url)

        views = {c.id: c for c in await store.list_conversations()}
        # the chat volunteer 7 holds is kept (closing it would cut a live handoff)
        assert views[held.id].mode == "human" and views[held.id].assigned_to == 7
        assert views[other.id].mode == "bot"
        for cid in (newest.id, older.id):
            assert views[cid].mode == "closed" and views[cid].closed_at is not None
            assert views[cid].assigned_to is None
            assert (await store.events(cid))[-1]["data"] == {
                "by": "migration",
                "reason": "duplicate",
                "kept": held.id,
            }
        assert [e["type"] for e in await store.events(ended.id)] == ["conversation.started"]
        async with store.engine.connect() as c:
            open_assignments = await c.exec_driver_sql(
                "SELECT count(*) FROM assignments WHERE ended_at IS NULL"
            )
            assert open_assignments.scalar() == 1  # volunteer 7's, on the kept chat
        with pytest.raises(ConversationAlreadyOpen):
            await _conv(store, "child")
    finally:
        await store.close()
