"""Shared fixtures: settings on a temporary SQLite file, backends from the environment."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

REQUIRE_ALL = os.environ.get("QINGTING_TEST_REQUIRE_ALL") == "1"
POSTGRES_URL = os.environ.get("QINGTING_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("QINGTING_TEST_REDIS_URL")
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


async def new_conversation(
    store: Any, address: str, *, channel: str = "wechat", state: str = "greet", **extra: Any
) -> Any:
    """A conversation in bot mode on the intake script, for tests that need one to work on."""
    return await store.create_conversation(
        channel=channel,
        address=address,
        script_id="intake",
        script_lang="zh-CN",
        script_version="v",
        state=state,
        **extra,
    )


def need(value: str | None, what: str) -> str:
    """Skip (locally) or fail (in CI) when a backend the test needs is not configured."""
    if value:
        return value
    if REQUIRE_ALL:
        pytest.fail(f"{what} is required in CI but not configured")
    pytest.skip(f"{what} not configured (set it to run this test)")


TEST_SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings on a fresh SQLite file under a temporary var/."""
    return Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite+aiosqlite:///{tmp_path}/qt.db",
        secret_key=TEST_SECRET,
    )


async def create_postgres_database(base_url: str) -> str:
    """A fresh, empty database on the test PostgreSQL server; returns its URL."""
    import asyncpg

    name = f"qt_{secrets.token_hex(6)}"
    dsn = base_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    head, _, _db = base_url.rpartition("/")
    return f"{head}/{name}"


async def drop_postgres_database(base_url: str, url: str) -> None:
    """Drop a database made by create_postgres_database."""
    import asyncpg

    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database on each backend (PostgreSQL only when configured)."""
    from storage.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/store.db"
        await upgrade(url)
        yield url
        return
    base = need(POSTGRES_URL, "QINGTING_TEST_POSTGRES_URL")
    url = await create_postgres_database(base)
    try:
        await upgrade(url)
        yield url
    finally:
        await drop_postgres_database(base, url)


@pytest.fixture
def chromium() -> Iterator[str]:
    """Path of Debian's Chromium for Playwright."""
    yield need(CHROMIUM, "Chromium (/usr/bin/chromium)")


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    """Headless Chromium driven through Playwright's async API (one per test)."""
    from tests.browser import chromium_browser  # Playwright is imported only by browser tests

    async with chromium_browser(chromium) as b:
        yield b
