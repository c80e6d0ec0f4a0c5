"""Console login over HTTP: cookie flags, lockout, CSRF, logout, expiry, roles, WS Origin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.config import Settings
from bot.console.auth import (
    ACCOUNTS,
    COOKIE,
    check_ws_origin,
    current_user,
    require,
    setup_auth,
    user_json,
)
from bot.errors import json_errors
from bot.keys import STORE
from storage.crypto import Vault
from storage.migrate import upgrade
from storage.store import Store
from tests.console.conftest import FakeClock, dump_database

PASSWORD = "correct horse battery"
Client = TestClient[web.Request, web.Application]


@require("supervisor", "admin")
async def supervisors_only(request: web.Request) -> web.Response:
    return web.json_response({"user": user_json(await current_user(request))})


async def unguarded_post(_request: web.Request) -> web.Response:
    # A route that forgets to ask for the user: the middleware must still demand CSRF.
    return web.json_response({"changed": True})


async def console_ws(request: web.Request) -> web.WebSocketResponse:
    check_ws_origin(request)
    await current_user(request)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_json({"type": "hello"})
    await ws.close()
    return ws


@web.middleware
async def https_behind_proxy(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # What a TLS-terminating proxy setup does: the app sees the original scheme.
    if request.headers.get("X-Forwarded-Proto") == "https":
        request = request.clone(scheme="https")
    return await handler(request)


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings, clock: FakeClock
) -> Client:
    # The service's own error middleware and Store, without the rest of build_app: these tests
    # are about login, and stay independent of how the full app mounts the console.
    app = web.Application(middlewares=[https_behind_proxy, json_errors])

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        await upgrade(settings.database_url)
        app[STORE] = Store.open(settings.database_url, Vault(settings.secret_key or ""))
        yield
        await app[STORE].close()

    app.cleanup_ctx.append(store_ctx)
    setup_auth(app, clock=clock)
    app.router.add_get("/api/console/supervise", supervisors_only)
    app.router.add_post("/api/console/forgetful", unguarded_post)
    app.router.add_get("/api/console/ws", console_ws)
    c = await aiohttp_client(app)
    accounts = c.app[ACCOUNTS]
    await accounts.add_user("lin", "volunteer", PASSWORD)
    await accounts.add_user("zhou", "supervisor", PASSWORD)
    return c


async def log_in(client: Client, username: str = "lin", **headers: str) -> dict[str, Any]:
    resp = await client.post(
        "/api/console/login", json={"username": username, "password": PASSWORD}, headers=headers
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()


def cookie_token(client: Client) -> str:
    return next(m.value for m in client.session.cookie_jar if m.key == COOKIE)


async def test_login_answers_user_and_csrf_and_sets_a_strict_httponly_cookie(
    client: Client,
) -> None:
    resp = await client.post("/api/console/login", json={"username": "lin", "password": PASSWORD})
    assert resp.status == 200
    body = await resp.json()
    assert body["user"]["username"] == "lin" and body["user"]["role"] == "volunteer"
    assert len(body["csrf_token"]) >= 32
    set_cookie = resp.headers["Set-Cookie"]
    assert set_cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/" in set_cookie
    assert "Secure" not in set_cookie  # plain http here: a Secure cookie would never come back

    me = await client.get("/api/console/me")
    assert me.status == 200
    assert await me.json() == body


async def test_cookie_is_secure_when_the_request_is_https(client: Client) -> None:
    resp = await client.post(
        "/api/console/login",
        json={"username": "lin", "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert resp.status == 200
    assert "Secure" in resp.headers["Set-Cookie"]


async def test_wrong_password_and_unknown_user_look_the_same(client: Client) -> None:
    answers = []
    for username, password in (("lin", "wrong password"), ("nobody", PASSWORD)):
        resp = await client.post(
            "/api/console/login", json={"username": username, "password": password}
        )
        answers.append((resp.status, await resp.json()))
        assert COOKIE not in resp.cookies
    assert answers[0] == answers[1]
    assert answers[0][0] == 401 and answers[0][1]["error"]["code"] == "login_failed"
    failed = await client.app[ACCOUNTS].audit_entries()
    assert [(e.action, e.username, e.allowed) for e in failed] == [
        ("login.failed", "nobody", False),
        ("login.failed", "lin", False),
    ]


@pytest.mark.parametrize("body", [{}, {"username": "lin"}, {"username": 1, "password": "x"}])
async def test_login_needs_a_username_and_password(client: Client, body: dict[str, Any]) -> None:
    resp = await client.post("/api/console/login", json=body)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "invalid_body"


async def test_lockout_after_five_failures_then_reopens(client: Client, clock: FakeClock) -> None:
    wrong = {"username": "lin", "password": "wrong password"}
    for _ in range(4):
        assert (await client.post("/api/console/login", json=wrong)).status == 401
    locked = await client.post("/api/console/login", json=wrong)
    assert locked.status == 423
    error = (await locked.json())["error"]
    assert error["code"] == "account_locked" and error["retry_after"] == 900
    assert locked.headers["Retry-After"] == "900"

    right = {"username": "lin", "password": PASSWORD}
    still = await client.post("/api/console/login", json=right)
    assert still.status == 423 and COOKIE not in still.cookies
    clock.advance(minutes=10)
    still = await client.post("/api/console/login", json=right)
    assert (await still.json())["error"]["retry_after"] == 300
    clock.advance(minutes=5)
    assert (await client.post("/api/console/login", json=right)).status == 200


async def test_state_changes_need_the_csrf_token(client: Client) -> None:
    csrf = (await log_in(client))["csrf_token"]
    for headers in ({}, {"X-CSRF-Token": "0" * len(csrf)}, {"X-CSRF-Token": ""}):
        for path in ("/api/console/logout", "/api/console/forgetful"):
            resp = await client.post(path, headers=headers)
            assert resp.status == 403, path
            assert (await resp.json())["error"]["code"] == "csrf_failed"
    assert (await client.get("/api/console/me")).status == 200  # still logged in

    resp = await client.post("/api/console/forgetful", headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    denied = [e for e in await client.app[ACCOUNTS].audit_entries() if e.action == "csrf.failed"]
    assert len(denied) == 6 and not any(e.allowed for e in denied)


async def test_state_changes_need_a_session(client: Client) -> None:
    resp = await client.post("/api/console/forgetful", headers={"X-CSRF-Token": "x"})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "not_logged_in"
    assert (await client.get("/api/console/me")).status == 401


async def test_csrf_token_of_another_session_is_refused(client: Client) -> None:
    other = (await log_in(client, "zhou"))["csrf_token"]
    client.session.cookie_jar.clear()
    await log_in(client, "lin")
    resp = await client.post("/api/console/logout", headers={"X-CSRF-Token": other})
    assert resp.status == 403


async def test_logout_ends_the_session_for_good(client: Client) -> None:
    csrf = (await log_in(client))["csrf_token"]
    token = cookie_token(client)
    resp = await client.post("/api/console/logout", headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    assert (await client.get("/api/console/me")).status == 401
    # Replaying the old cookie by hand does not bring the session back.
    replay = await client.get("/api/console/me", cookies={COOKIE: token})
    assert replay.status == 401


async def test_login_replaces_the_previous_session(client: Client) -> None:
    await log_in(client)
    first = cookie_token(client)
    await log_in(client)
    assert cookie_token(client) != first
    client.session.cookie_jar.clear()
    assert (await client.get("/api/console/me", cookies={COOKIE: first})).status == 401


async def test_session_expires_when_idle(client: Client, clock: FakeClock) -> None:
    await log_in(client)
    clock.advance(hours=1, minutes=59)
    assert (await client.get("/api/console/me")).status == 200
    clock.advance(hours=2, seconds=1)
    resp = await client.get("/api/console/me")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "not_logged_in"


async def test_roles_are_enforced_and_refusals_audited(client: Client) -> None:
    await log_in(client, "lin")
    resp = await client.get("/api/console/supervise")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    entries = await client.app[ACCOUNTS].audit_entries()
    assert (entries[0].action, entries[0].username, entries[0].allowed) == (
        "access.denied",
        "lin",
        False,
    )
    assert entries[0].detail["path"] == "/api/console/supervise"

    client.session.cookie_jar.clear()
    await log_in(client, "zhou")
    resp = await client.get("/api/console/supervise")
    assert resp.status == 200
    assert (await resp.json())["user"]["username"] == "zhou"


def test_require_rejects_unknown_roles() -> None:
    with pytest.raises(ValueError):
        require("root")


async def test_websocket_needs_the_same_origin(client: Client) -> None:
    await log_in(client)
    own = f"http://{client.host}:{client.port}"
    async with client.ws_connect("/api/console/ws", origin=own) as ws:
        assert (await ws.receive_json()) == {"type": "hello"}
    for origin in (None, "http://evil.example", f"http://{client.host}:1", "null"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            kwargs = {"origin": origin} if origin else {}
            await client.ws_connect("/api/console/ws", **kwargs)
        assert exc.value.status == 403, origin


async def test_raw_session_token_never_reaches_the_database(client: Client) -> None:
    csrf = (await log_in(client))["csrf_token"]
    dump = await dump_database(client.app[STORE])
    assert "lin" in dump
    assert cookie_token(client) not in dump and csrf not in dump and PASSWORD not in dump


async def test_the_full_app_mounts_login_with_csrf(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: Settings
) -> None:
    from bot.app import build_app  # the service as `qingting serve` builds it

    client = await aiohttp_client(build_app(settings))
    await client.app[ACCOUNTS].add_user("lin", "volunteer", PASSWORD)
    csrf = (await log_in(client))["csrf_token"]
    assert (await client.post("/api/console/logout")).status == 403
    resp = await client.post("/api/console/logout", headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    assert (await client.get("/api/console/me")).status == 401
