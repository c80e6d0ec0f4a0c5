"""Fixtures for the console tests: a settable clock, Accounts on each backend, a DB dump."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

import storage.models_accounts  # noqa: F401  (registers the account tables on Base.metadata)
from storage.accounts import Accounts
from storage.crypto import Vault
from storage.models import Base
from storage.store import Store
from tests.conftest import TEST_SECRET


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        """Move the clock forward by timedelta(**kwargs)."""
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting at a fixed instant."""
    return FakeClock()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A Store on a migrated database, SQLite and PostgreSQL."""
    s = Store.open(database_url, Vault(TEST_SECRET))
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def accounts(store: Store, clock: FakeClock) -> Accounts:
    """Accounts on that store, with the fake clock."""
    return Accounts(store, clock=clock)


async def dump_database(store: Store) -> str:
    """Every value of every table as one string, to prove what is (not) stored."""
    parts: list[str] = []
    async with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(value.decode("latin-1"))
                    parts.append(str(value))
    return "\n".join(parts)
