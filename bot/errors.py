"""JSON errors for the HTTP API: `{"error": {"code", "message"}}` with a 4xx/5xx status."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can act on."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    """The JSON error body every API route answers with."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn ApiError and aiohttp's HTTP errors on /api/ routes into the JSON error shape."""
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.status, e.code, e.message)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "body_too_large", "The request body is too large.")
    except web.HTTPException as e:
        if not request.path.startswith("/api/") or e.status < 400:
            raise
        code = e.reason.lower().replace(" ", "_")
        return error_response(e.status, code, e.reason)
    except Exception:
        if not request.path.startswith("/api/"):
            raise
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "Something went wrong; nothing was lost.")


async def json_object(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 ApiError saying what is wrong."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ApiError(400, "invalid_body", "The body must be a JSON object.")
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "The body must be a JSON object.")
    return body
