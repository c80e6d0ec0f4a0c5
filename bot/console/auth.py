"""Console login: session cookie, CSRF, role checks, audit helpers and the WebSocket Origin check.

CSRF is enforced twice on purpose: `csrf_middleware` (installed by `setup_auth`) checks every
POST/PUT/PATCH/DELETE under /api/console/ except login, so a route that forgets to ask for the
user is still protected; and `current_user` checks it for any unsafe method it is called on.
"""

from __future__ import annotations

import functools
import hmac
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NoReturn

from aiohttp import web
from yarl import URL

from bot.errors import ApiError, json_object
from bot.keys import STORE
from storage.accounts import AccountLocked, Accounts, LoginFailed, UserView
from storage.models_accounts import ROLES

ACCOUNTS = web.AppKey("accounts", Accounts)

COOKIE = "qt_console"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PATH = "/api/console/login"
LOGOUT_PATH = "/api/console/logout"
ME_PATH = "/api/console/me"
CONSOLE_PREFIX = "/api/console/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FIELD = 1024  # longer usernames/passwords are refused before argon2 sees them

# (UserView, csrf) once looked up for this request
_SESSION = web.RequestKey("qt_console_session", tuple[UserView, str])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def setup_auth(app: web.Application, **accounts_options: Any) -> None:
    """Mount login/logout/me, the CSRF middleware, and an `Accounts` under ACCOUNTS.

    Call after build_app(): the Accounts repository is created in a cleanup_ctx that runs after
    the one opening the Store. accounts_options go to Accounts (clock=..., session_idle=...).
    """

    async def accounts_ctx(app: web.Application) -> AsyncIterator[None]:
        app[ACCOUNTS] = Accounts(app[STORE], **accounts_options)
        yield

    app.cleanup_ctx.append(accounts_ctx)
    app.middlewares.append(csrf_middleware)
    app.router.add_post(LOGIN_PATH, login)
    app.router.add_post(LOGOUT_PATH, logout)
    app.router.add_get(ME_PATH, me)


def user_json(user: UserView) -> dict[str, Any]:
    """The JSON shape of a user in every console API answer."""
    return {"id": user.id, "username": user.username, "role": user.role}


async def _session(request: web.Request) -> tuple[UserView, str]:
    found = request.get(_SESSION)
    if found is None:
        token = request.cookies.get(COOKIE, "")
        found = await request.app[ACCOUNTS].session_user(token) if token else None
        if found is None:
            raise ApiError(401, "not_logged_in", "Please log in to the console.")
        request[_SESSION] = found
    return found


async def current_user(request: web.Request) -> UserView:
    """The logged-in user (401 not_logged_in); for unsafe methods also checks X-CSRF-Token."""
    user, csrf = await _session(request)
    if request.method not in SAFE_METHODS and request.path != LOGIN_PATH:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf.encode()):
            await audit_request(
                request, user, "csrf.failed", allowed=False, detail={"sent": bool(sent)}
            )
            raise ApiError(403, "csrf_failed", "Missing or wrong X-CSRF-Token; reload the console.")
    return user


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a session and a matching X-CSRF-Token on state-changing console requests."""
    if (
        request.method not in SAFE_METHODS
        and request.path.startswith(CONSOLE_PREFIX)
        and request.path != LOGIN_PATH
    ):
        await current_user(request)
    return await handler(request)


async def audit_request(
    request: web.Request,
    user: UserView | None,
    action: str,
    *,
    conversation_id: str | None = None,
    allowed: bool = True,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Write an audit row for this request (adds the client IP)."""
    await request.app[ACCOUNTS].audit(
        user,
        action,
        conversation_id=conversation_id[:32] if conversation_id else None,
        allowed=allowed,
        detail=detail,
        ip=request.remote,
    )


async def deny(
    request: web.Request,
    user: UserView,
    action: str,
    *,
    conversation_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> NoReturn:
    """Audit a refused attempt (e.g. action="transcript.denied") and answer 403 forbidden."""
    await audit_request(
        request,
        user,
        action,
        conversation_id=conversation_id,
        allowed=False,
        detail={"method": request.method, "path": request.path, **(detail or {})},
    )
    raise ApiError(403, "forbidden", "You do not have access to this.")


def require(*roles: str) -> Callable[[Handler], Handler]:
    """Decorator: the handler runs only for a logged-in user of one of roles (else 401/403)."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; roles are {ROLES}")

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            user = await current_user(request)
            if roles and user.role not in roles:
                conv = request.match_info.get("id") if "/conversations/" in request.path else None
                await deny(
                    request,
                    user,
                    "access.denied",
                    conversation_id=conv,
                    detail={"need": list(roles)},
                )
            return await handler(request)

        return guarded

    return decorate


def check_ws_origin(request: web.Request) -> None:
    """403 bad_origin unless the WebSocket upgrade's Origin names this very host (and port)."""
    origin = request.headers.get("Origin", "")
    try:
        url = URL(origin)
        host = URL.build(scheme=url.scheme, authority=request.host) if url.scheme else None
    except ValueError:
        host = None
    same = (
        host is not None
        and url.scheme in ("http", "https")
        and url.host is not None
        and (url.host.lower(), url.port) == ((host.host or "").lower(), host.port)
    )
    if not same:
        raise ApiError(403, "bad_origin", "WebSocket connections must come from the console page.")


async def login(request: web.Request) -> web.Response:
    """POST /api/console/login {"username","password"}: session cookie and CSRF token."""
    body = await json_object(request)
    username, password = body.get("username"), body.get("password")
    if not (isinstance(username, str) and isinstance(password, str) and username and password):
        raise ApiError(400, "invalid_body", "Send a username and a password.")
    if len(username) > MAX_FIELD or len(password) > MAX_FIELD:
        raise ApiError(400, "invalid_body", "Username or password is too long.")
    accounts = request.app[ACCOUNTS]
    try:
        user = await accounts.authenticate(username, password, ip=request.remote)
    except AccountLocked as exc:
        seconds = max(1, math.ceil((exc.until - accounts.now()).total_seconds()))
        minutes = math.ceil(seconds / 60)
        return web.json_response(
            {
                "error": {
                    "code": "account_locked",
                    "message": f"Too many failed logins; try again in {minutes} min.",
                    "retry_after": seconds,
                    "locked_until": exc.until.isoformat(),
                }
            },
            status=423,
            headers={"Retry-After": str(seconds)},
        )
    except LoginFailed as exc:
        raise ApiError(401, "login_failed", "Wrong username or password.") from exc
    old = request.cookies.get(COOKIE)
    if old:  # never keep a session id the browser had before login (session fixation)
        await accounts.end_session(old)
    token, csrf = await accounts.create_session(user)
    response = web.json_response(
        {"user": user_json(user), "csrf_token": csrf}, headers={"Cache-Control": "no-store"}
    )
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        path="/",
        secure=True if request.secure else None,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """POST /api/console/logout: the session ends at once and the cookie is cleared."""
    user = await current_user(request)
    await request.app[ACCOUNTS].end_session(request.cookies.get(COOKIE, ""))
    await audit_request(request, user, "logout")
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    """GET /api/console/me: who is logged in, and the CSRF token (for a reloaded page)."""
    user, csrf = await _session(request)
    return web.json_response(
        {"user": user_json(user), "csrf_token": csrf}, headers={"Cache-Control": "no-store"}
    )
