"""Typed keys of the aiohttp application: every shared resource lives under one of these."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bot.channels.base import Channel
from bot.config import Settings
from bot.metrics import Metrics
from bot.pipeline import Pipeline
from dialogs import ScriptLibrary
from handoff.bus import EventBus
from handoff.service import HandoffService
from storage.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", EventBus)
PIPELINE = web.AppKey("pipeline", Pipeline)
HANDOFF = web.AppKey("handoff", HandoffService)
LIBRARY = web.AppKey("library", ScriptLibrary)
CHANNELS = web.AppKey("channels", dict[str, Channel])
TASKS = web.AppKey("tasks", set[asyncio.Task[Any]])
METRICS = web.AppKey("metrics", Metrics)
