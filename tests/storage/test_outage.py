"""A database that goes away for a moment: the store waits it out and loses nothing."""

from __future__ import annotations

import asyncpg
import pytest

from storage.crypto import Vault
from storage.store import Store
from tests.conftest import POSTGRES_URL, create_postgres_database, drop_postgres_database, need


@pytest.fixture
async def pg_url():
    base = need(POSTGRES_URL, "QINGTING_TEST_POSTGRES_URL")
    from storage.migrate import upgrade

    url = await create_postgres_database(base)
    await upgrade(url)
    yield url
    await drop_postgres_database(base, url)


async def kill_connections(url: str) -> int:
    """Terminate every server connection to the database, as a restart or failover would."""
    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        return len(rows)
    finally:
        await admin.close()


async def test_dropped_connections_are_replaced_and_nothing_is_lost(pg_url: str) -> None:
    store = Store.open(pg_url, Vault("outage-test-secret-0123456789"))
    try:
        conv = await store.create_conversation(
            channel="web",
            address="a",
            script_id="intake",
            script_lang="zh-CN",
            script_version="v",
            state="s",
        )
        assert await kill_connections(pg_url) >= 1  # the pool's connections are now dead
        msg, new = await store.store_inbound(conv.id, channel="web", message_id="1", text="还在吗")
        assert new
        await kill_connections(pg_url)
        async with store.turn(conv.id) as turn:
            await turn.mark_processed(msg.id)
        await kill_connections(pg_url)
        again = await store.get_message(msg.id)
        assert again is not None and again.text == "还在吗" and again.processed_at is not None
        assert await store.ping()
    finally:
        await store.close()
