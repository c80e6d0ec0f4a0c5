"""Admins edit dialogue scripts without a deploy: upload, validate, keep every version, go live."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bot.console.auth import audit_request, current_user, require
from bot.errors import ApiError, json_object
from bot.keys import BUS, LIBRARY, STORE
from dialogs import ScriptError, ScriptLibrary
from dialogs.validate import check_text
from handoff.bus import RESYNC_TOPIC, Event
from storage.scripts_repo import ScriptsRepo
from storage.store import Store

log = logging.getLogger(__name__)

SCRIPTS_TOPIC = "scripts.changed"
MAX_SCRIPT_BYTES = 60 * 1024  # under the app's 64 KiB body cap


def setup_scripts(app: web.Application) -> None:
    """Routes, plus loading uploaded scripts at start and following other processes' uploads."""
    app.router.add_routes(
        [
            web.get("/api/console/scripts", list_scripts),
            web.get("/api/console/scripts/{script_id}/{lang}", get_script),
            web.post("/api/console/scripts", upload_script),
        ]
    )
    app.cleanup_ctx.append(_follow_uploads)


async def load_uploaded(app: web.Application) -> int:
    """Add every uploaded version to the app's library (newest current); returns how many."""
    return await add_uploads(app[LIBRARY], app[STORE])


async def add_uploads(library: ScriptLibrary, store: Store) -> int:
    """Add every uploaded version in store to library (newest current); returns how many."""
    repo = ScriptsRepo(store)
    # A script shipped with a deploy counts as uploaded the first time it is seen, so a newer
    # shipped version (a fix) wins over an older admin upload, and an unchanged one does not
    # undo a later upload.
    for sid in library.script_ids():
        for lang in library.languages(sid):
            shipped = library.script(sid, lang)
            await repo.save(
                script_id=sid,
                lang=lang,
                version=shipped.version,
                text=shipped.text,
                uploaded_by="deploy",
                bump=False,
            )
    count = 0
    for v in await repo.all():
        try:
            library.add_text(v.text, f"<uploaded {v.script_id}.{v.lang} {v.version}>")
            count += 1
        except ScriptError:  # validated on upload; a newer validator may disagree: skip, loudly
            log.exception(
                "uploaded script %s %s %s no longer validates", v.script_id, v.lang, v.version
            )
    return count


async def _follow_uploads(app: web.Application) -> AsyncIterator[None]:
    n = await load_uploaded(app)
    if n:
        log.info("loaded %d uploaded script version(s)", n)

    async def follow() -> None:
        async with app[BUS].subscribe(SCRIPTS_TOPIC) as sub:
            async for event in sub:
                try:
                    await on_scripts_event(app, event)
                except Exception:  # one bad event must not stop this process following uploads
                    log.exception("could not load an uploaded script version")

    task = asyncio.create_task(follow())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def on_scripts_event(app: web.Application, event: Event) -> None:
    """Another process uploaded a version: load it. After a bus gap (resync) events may have
    been missed, so every stored upload is loaded again, as at start."""
    if event.topic == RESYNC_TOPIC:
        await load_uploaded(app)
        return
    found = await ScriptsRepo(app[STORE]).get(
        str(event.data.get("script_id")),
        str(event.data.get("lang")),
        str(event.data.get("version")),
    )
    if found is not None:  # also a revert to a version already loaded
        app[LIBRARY].add_text(found.text, f"<uploaded {found.version}>")


@require("admin")
async def list_scripts(request: web.Request) -> web.Response:
    """GET /api/console/scripts: current version of each script, and every upload."""
    library = request.app[LIBRARY]
    current = [
        {"script_id": sid, "lang": lang, "version": library.current_version(sid, lang)}
        for sid in library.script_ids()
        for lang in library.languages(sid)
    ]
    uploads = [
        {
            "script_id": v.script_id,
            "lang": v.lang,
            "version": v.version,
            "uploaded_by": v.uploaded_by,
            "at": v.created_at.isoformat(),
        }
        for v in await ScriptsRepo(request.app[STORE]).all()
    ]
    return web.json_response({"current": current, "uploads": uploads})


@require("admin")
async def get_script(request: web.Request) -> web.Response:
    """GET /api/console/scripts/{script_id}/{lang}: the current YAML, to edit."""
    library = request.app[LIBRARY]
    try:
        script = library.script(request.match_info["script_id"], request.match_info["lang"])
    except KeyError as exc:
        raise ApiError(404, "unknown_script", "No such script.") from exc
    return web.json_response(
        {
            "script_id": script.id,
            "lang": script.lang,
            "version": script.version,
            "yaml": script.text,
        }
    )


@require("admin")
async def upload_script(request: web.Request) -> web.Response:
    """POST /api/console/scripts {"yaml"}: validate, keep, make current in every process."""
    user = await current_user(request)
    text: Any = (await json_object(request)).get("yaml")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "invalid_yaml", "'yaml' must be the script's text.")
    if len(text.encode()) > MAX_SCRIPT_BYTES:
        raise ApiError(
            413, "script_too_large", f"A script may be at most {MAX_SCRIPT_BYTES} bytes."
        )
    script, problems = check_text(text, "<upload>")
    if problems or script is None:
        await audit_request(request, user, "script.rejected", allowed=False)
        return web.json_response(
            {
                "error": {
                    "code": "invalid_script",
                    "message": "The script has problems; nothing was changed.",
                    "problems": [
                        {"line": p.line, "state": p.state, "code": p.code, "message": p.message}
                        for p in problems
                    ],
                }
            },
            status=422,
        )
    script_id, lang, version = script.id, script.lang, script.version
    # Kept first, then live here, then announced: no process serves a version the database
    # does not have (this process also hears its own announcement; adding it again is harmless).
    saved = await ScriptsRepo(request.app[STORE]).save(
        script_id=script_id, lang=lang, version=version, text=text, uploaded_by=user.username
    )
    request.app[LIBRARY].add_text(text, "<upload>")
    await request.app[BUS].publish(
        SCRIPTS_TOPIC, {"script_id": script_id, "lang": lang, "version": version}
    )
    await audit_request(
        request, user, "script.upload", detail={"id": script_id, "version": version}
    )
    return web.json_response(
        {"script_id": saved.script_id, "lang": saved.lang, "version": saved.version}, status=201
    )
