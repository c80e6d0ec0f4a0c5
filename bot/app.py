"""The aiohttp application factory: resources, channels, routes; no module-level singletons."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

import nlp
from bot.channels.base import Channel, ChannelContext, Outbound, log_failure
from bot.channels.webchat import WebChatChannel
from bot.config import Settings, open_store
from bot.errors import json_errors
from bot.keys import (
    BUS,
    CHANNELS,
    HANDOFF,
    LIBRARY,
    METRICS,
    PIPELINE,
    SETTINGS,
    STORE,
    TASKS,
)
from bot.metrics import CONTENT_TYPE_LATEST, Metrics
from bot.pipeline import Pipeline
from dialogs import DialogEngine, ScriptLibrary
from handoff.bus import create_bus
from handoff.notices import notice
from handoff.service import HandoffService, Policy
from storage.migrate import upgrade
from storage.models import utcnow
from storage.retention import purge_closed
from storage.views import ConversationView

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


def load_library(settings: Settings) -> ScriptLibrary:
    """The shipped scripts plus any in QINGTING_SCRIPTS_DIR; raises ScriptError if one is bad."""
    library = ScriptLibrary.load_dir()
    if settings.scripts_dir is not None:
        for path in sorted(settings.scripts_dir.glob("*.yaml")):
            library.add_text(path.read_text(encoding="utf-8"), str(path))
    return library


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels switched on by configuration (the web chat is always on)."""
    channels: dict[str, Channel] = {
        "web": WebChatChannel(
            max_text_chars=settings.max_text_chars, default_lang=settings.default_lang
        )
    }
    if settings.wechat.enabled:
        from bot.channels.wechat import WeChatChannel

        channels["wechat"] = WeChatChannel(settings.wechat)
    else:
        log.info("WeChat channel off: QINGTING_WECHAT_APPID/SECRET/TOKEN are not set")
    return channels


def build_app(settings: Settings, *, migrate: bool = True) -> web.Application:
    """The whole service as one aiohttp application."""
    app = web.Application(client_max_size=64 * 1024, middlewares=[json_errors])
    app[SETTINGS] = settings
    app[LIBRARY] = load_library(settings)  # a broken script stops start-up here, loudly
    app[CHANNELS] = build_channels(settings)
    app[TASKS] = set()
    app[METRICS] = Metrics()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        if migrate:
            await upgrade(settings.database_url)
        store = open_store(settings)
        bus = create_bus(settings.redis_url)
        await bus.start()
        handoff = HandoffService(
            store,
            bus,
            lambda conv, texts: deliver(app, conv, [Outbound(t) for t in texts]),
            policy_of(settings),
            mode_changed=lambda conv: mode_changed(app, conv),
        )
        engine = DialogEngine(app[LIBRARY])
        pipeline = Pipeline(
            store,
            engine,
            nlp.assess,
            handoff,
            default_lang=settings.default_lang,
            metrics=app[METRICS],
        )
        app[STORE], app[BUS] = store, bus
        app[HANDOFF], app[PIPELINE] = handoff, pipeline
        ctx = ChannelContext(
            receiver=pipeline,
            bus=bus,
            services={
                "store": store,
                "start_conversation": pipeline.start_conversation,
                "open_web_session": app[CHANNELS]["web"].open_session,  # WeChat login uses it
                "settings": settings,
                "notice": notice,
            },
        )
        for channel in app[CHANNELS].values():
            await channel.start(ctx)
        if settings.recover_unanswered:
            spawn(app, recover(app))
        if settings.retention_days > 0:
            spawn(app, purge(app, timedelta(days=settings.retention_days)))
        spawn(app, handoff_clock(app))
        yield
        for task in list(app[TASKS]):
            task.cancel()
        await asyncio.gather(*app[TASKS], return_exceptions=True)
        for channel in app[CHANNELS].values():
            await channel.close()
        await bus.close()
        await store.close()

    app.cleanup_ctx.append(resources)
    from bot.console.api import setup_console  # imports bot.keys; kept here to avoid a cycle

    setup_console(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    for channel in app[CHANNELS].values():
        app.router.add_routes(channel.routes())
    app.router.add_get("/", page("chat.html"))
    app.router.add_get("/exit", page("exit.html"))
    app.router.add_get("/console", page("console.html"))
    app.router.add_get("/admin", page("admin.html"))
    app.router.add_static("/static/", STATIC, show_index=False)
    return app


def spawn(app: web.Application, coro: Any) -> asyncio.Task[Any]:
    """A background task owned by the app, cancelled at shutdown."""
    task = asyncio.create_task(coro)
    app[TASKS].add(task)
    task.add_done_callback(app[TASKS].discard)
    task.add_done_callback(log_failure)
    return task


async def deliver(app: web.Application, conv: ConversationView, msgs: Sequence[Outbound]) -> bool:
    """Send messages through the conversation's channel; False (logged) if they did not go."""
    channel = app[CHANNELS].get(conv.channel)
    if channel is None:
        log.error("conversation %s is on channel %r, which is off", conv.id, conv.channel)
        return False
    try:
        await channel.send(conv.address, msgs)
    except Exception:  # the channel recorded why (e.g. WeChat's 48 h window); the caller shows it
        log.exception("could not deliver %d message(s) to conversation %s", len(msgs), conv.id)
        return False
    return True


async def mode_changed(app: web.Application, conv: ConversationView) -> None:
    """Tell the child's channel who answers now, if it can show that (the web chat can)."""
    channel = app[CHANNELS].get(conv.channel)
    show = getattr(channel, "show_mode", None)
    if show is not None:
        await show(conv.address, conv.mode)


async def recover(app: web.Application, period: float = 30.0) -> None:
    """Answer what a crash left unanswered: at start, then whatever another process dropped."""
    pipeline = app[PIPELINE]
    older_than = timedelta(0)  # at start everything unanswered is a leftover of a crash
    while True:
        try:
            n = await pipeline.recover(lambda c, m: deliver(app, c, m), older_than=older_than)
            if n:
                log.warning("answered %d message(s) left unanswered", n)
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. the database still starting: the next sweep tries again
            log.exception("recovery sweep failed")
        # Later sweeps take only messages old enough that no live turn can be on them.
        older_than = timedelta(seconds=period)
        await asyncio.sleep(period)


async def purge(app: web.Application, keep: timedelta, period: float = 3600.0) -> None:
    """Hourly: drop what children wrote in conversations closed longer than `keep` ago."""
    store = app[STORE]
    while True:
        try:
            n = await purge_closed(store, utcnow() - keep)
            if n:
                log.info("retention: purged %d closed conversation(s)", n)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database away for a moment: the next hour tries again
            log.exception("retention purge failed")
        await asyncio.sleep(period)


def policy_of(settings: Settings) -> Policy:
    """Handoff timings from the settings."""
    return Policy(
        sla_urgent=timedelta(seconds=settings.sla_urgent_seconds),
        sla_imminent=timedelta(seconds=settings.sla_imminent_seconds),
        reassure_every=timedelta(seconds=settings.reassure_seconds),
        capacity=settings.volunteer_capacity,
    )


async def handoff_clock(app: web.Application, period: float = 1.0) -> None:
    """Once a second: SLA escalation and reassurance of waiting children."""
    while True:
        await asyncio.sleep(period)
        try:
            await app[HANDOFF].tick()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bad tick must not stop the clock; the next one retries
            log.exception("handoff tick failed")


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: 200 when the database answers, 503 when it does not."""
    ok = await request.app[STORE].ping()
    return web.json_response(
        {"status": "ok" if ok else "database unavailable"}, status=200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format (queue and presence read at scrape time)."""
    m = request.app[METRICS]
    handoff = request.app[HANDOFF]
    m.waiting.set(len(await handoff.repo.waiting_brief()))  # counted, not decrypted
    m.volunteers.set(await handoff.volunteers_available())
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def page(name: str) -> Any:
    """A handler serving one static HTML page."""

    async def handler(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(
            STATIC / name, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
        )

    return handler
