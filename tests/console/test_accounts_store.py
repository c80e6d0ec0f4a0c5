"""Accounts repository on SQLite and PostgreSQL: users, lockout, sessions, audit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from storage.accounts import AccountLocked, Accounts, LoginFailed, UserExists
from storage.store import Store
from tests.console.conftest import FakeClock, dump_database

PASSWORD = "correct horse battery"


async def test_add_user_and_log_in(accounts: Accounts) -> None:
    vol = await accounts.add_user("lin", "volunteer", PASSWORD)
    sup = await accounts.add_user("zhou", "supervisor", PASSWORD + "!")

    assert await accounts.authenticate("lin", PASSWORD, ip="10.0.0.1") == vol
    assert await accounts.get_user(sup.id) == sup
    assert await accounts.get_user(9999) is None
    assert [u.username for u in await accounts.users()] == ["lin", "zhou"]
    assert await accounts.users(role="supervisor") == [sup]
    ok = await accounts.audit_entries(user_id=vol.id)
    assert [(e.action, e.allowed, e.ip) for e in ok] == [("login.ok", True, "10.0.0.1")]


async def test_add_user_refuses_duplicates_and_bad_input(accounts: Accounts) -> None:
    await accounts.add_user("lin", "volunteer", PASSWORD)
    with pytest.raises(UserExists):
        await accounts.add_user("lin", "admin", PASSWORD)
    with pytest.raises(ValueError, match="role"):
        await accounts.add_user("wang", "root", PASSWORD)
    with pytest.raises(ValueError, match="password"):
        await accounts.add_user("wang", "volunteer", "short")
    with pytest.raises(ValueError, match="username"):
        await accounts.add_user("wang li", "volunteer", PASSWORD)
    assert [u.username for u in await accounts.users()] == ["lin"]


async def test_failed_logins_are_refused_and_audited(accounts: Accounts) -> None:
    user = await accounts.add_user("lin", "volunteer", PASSWORD)
    with pytest.raises(LoginFailed) as wrong:
        await accounts.authenticate("lin", "not the password", ip="10.0.0.2")
    with pytest.raises(LoginFailed) as unknown:
        await accounts.authenticate("nobody", PASSWORD, ip="10.0.0.3")
    assert (wrong.value.reason, unknown.value.reason) == ("bad_password", "unknown_user")

    entries = await accounts.audit_entries()
    assert [(e.action, e.username, e.user_id, e.allowed, e.ip) for e in entries] == [
        ("login.failed", "nobody", None, False, "10.0.0.3"),
        ("login.failed", "lin", user.id, False, "10.0.0.2"),
    ]


async def test_five_failures_lock_the_account_for_15_minutes(
    accounts: Accounts, clock: FakeClock
) -> None:
    await accounts.add_user("lin", "volunteer", PASSWORD)
    for _ in range(4):
        with pytest.raises(LoginFailed):
            await accounts.authenticate("lin", "wrong password")
    with pytest.raises(AccountLocked) as locked:
        await accounts.authenticate("lin", "wrong password")
    assert locked.value.until == clock.now + timedelta(minutes=15)

    with pytest.raises(AccountLocked):  # even the right password, while locked
        await accounts.authenticate("lin", PASSWORD)
    clock.advance(minutes=14, seconds=59)
    with pytest.raises(AccountLocked):
        await accounts.authenticate("lin", PASSWORD)
    clock.advance(seconds=2)
    assert (await accounts.authenticate("lin", PASSWORD)).username == "lin"
    actions = [e.action for e in await accounts.audit_entries()]
    assert actions.count("login.locked") == 2 and actions.count("login.failed") == 5


async def test_a_success_resets_the_failure_count(accounts: Accounts) -> None:
    await accounts.add_user("lin", "volunteer", PASSWORD)
    for _ in range(4):
        with pytest.raises(LoginFailed):
            await accounts.authenticate("lin", "wrong password")
    await accounts.authenticate("lin", PASSWORD)
    for _ in range(4):
        with pytest.raises(LoginFailed):
            await accounts.authenticate("lin", "wrong password")
    await accounts.authenticate("lin", PASSWORD)


async def test_concurrent_failures_are_all_counted(accounts: Accounts) -> None:
    await accounts.add_user("lin", "volunteer", PASSWORD)
    results = await asyncio.gather(
        *(accounts.authenticate("lin", f"wrong {i}") for i in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, AccountLocked) for r in results) == 1
    with pytest.raises(AccountLocked):
        await accounts.authenticate("lin", PASSWORD)


async def test_session_round_trip_and_logout(accounts: Accounts) -> None:
    user = await accounts.add_user("lin", "volunteer", PASSWORD)
    token, csrf = await accounts.create_session(user)
    assert await accounts.session_user(token) == (user, csrf)
    assert await accounts.session_user(token + "x") is None
    assert await accounts.session_user("") is None
    other, other_csrf = await accounts.create_session(user)
    assert other != token and other_csrf != csrf

    await accounts.end_session(token)
    assert await accounts.session_user(token) is None
    assert await accounts.session_user(other) == (user, other_csrf)


async def test_session_idle_expiry_slides(accounts: Accounts, clock: FakeClock) -> None:
    user = await accounts.add_user("lin", "volunteer", PASSWORD)
    token, _ = await accounts.create_session(user)
    clock.advance(hours=1, minutes=50)
    assert await accounts.session_user(token) is not None  # use pushes the idle end
    clock.advance(hours=1, minutes=50)
    assert await accounts.session_user(token) is not None
    clock.advance(hours=2, seconds=1)
    assert await accounts.session_user(token) is None


async def test_session_ends_after_12_hours_even_in_use(
    accounts: Accounts, clock: FakeClock
) -> None:
    user = await accounts.add_user("lin", "volunteer", PASSWORD)
    token, _ = await accounts.create_session(user)
    for _ in range(11):
        clock.advance(hours=1)
        assert await accounts.session_user(token) is not None
    clock.advance(minutes=59)
    assert await accounts.session_user(token) is not None
    clock.advance(minutes=1)
    assert await accounts.session_user(token) is None


async def test_disabling_a_user_ends_sessions_and_logins(accounts: Accounts) -> None:
    user = await accounts.add_user("lin", "volunteer", PASSWORD)
    token, _ = await accounts.create_session(user)
    await accounts.disable_user(user.id)
    assert await accounts.session_user(token) is None
    with pytest.raises(LoginFailed):
        await accounts.authenticate("lin", PASSWORD)
    assert await accounts.users() == []


async def test_database_never_holds_tokens_or_passwords(store: Store, accounts: Accounts) -> None:
    user = await accounts.add_user("lin", "volunteer", PASSWORD)
    token, csrf = await accounts.create_session(user)
    dump = await dump_database(store)
    assert "lin" in dump  # the dump does read the account tables
    for secret in (token, csrf, PASSWORD):
        assert secret not in dump


async def test_audit_entries_filter_by_conversation_and_user(accounts: Accounts) -> None:
    vol = await accounts.add_user("lin", "volunteer", PASSWORD)
    sup = await accounts.add_user("zhou", "supervisor", PASSWORD)
    await accounts.audit(vol, "transcript.read", conversation_id="c1", ip="10.0.0.9")
    await accounts.audit(vol, "transcript.denied", conversation_id="c2", allowed=False)
    await accounts.audit(sup, "transcript.read", conversation_id="c2", detail={"n": 3})

    c2 = await accounts.audit_entries(conversation_id="c2")
    assert [(e.username, e.action, e.allowed, e.detail) for e in c2] == [
        ("zhou", "transcript.read", True, {"n": 3}),
        ("lin", "transcript.denied", False, {}),
    ]
    assert [e.conversation_id for e in await accounts.audit_entries(user_id=vol.id)] == [
        "c2",
        "c1",
    ]
    assert len(await accounts.audit_entries(limit=1)) == 1
