"""The seam between platforms and the core: message types and the Channel protocol."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web


@dataclass(frozen=True, slots=True)
class QuickReply:
    """A button the child can tap; `value` is what comes back as text."""

    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message to the child."""

    text: str
    options: tuple[QuickReply, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form used by the web chat API and its WebSocket."""
        return {
            "text": self.text,
            "options": [{"label": o.label, "value": o.value} for o in self.options],
        }


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message from a child, normalised by its channel adapter."""

    channel: str
    address: str  # the platform's id of the child (openid, chat id, web session id)
    message_id: str  # the platform's id of this message, for de-duplication
    text: str
    received_at: datetime
    kind: str = "text"  # text | image | card | event


class Receiver(Protocol):
    """The core as a channel sees it: store first, then run the turn."""

    async def accept(
        self, inbound: Inbound, *, conversation_id: str | None = None, conversation: Any = None
    ) -> Any:
        """Store the message (idempotent); returns an Accepted."""
        ...

    async def process(self, accepted: Any) -> list[Outbound]:
        """Run the turn for a stored message and return the replies (already stored)."""
        ...

    async def respond(self, accepted: Any) -> tuple[list[Outbound], str]:
        """process(), plus the conversation's mode afterwards (bot, waiting, human, closed)."""
        ...


class Publisher(Protocol):
    """The event bus as a channel sees it."""

    async def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Send an event to every subscriber of topic, in any process."""
        ...

    def subscribe(self, *topics: str) -> Any:
        """An async context manager and iterator of events."""
        ...


@dataclass
class ChannelContext:
    """What a channel is given at start: the core and the bus."""

    receiver: Receiver
    bus: Publisher
    # e.g. "store" (dedup keys), "notice" ((key, lang) -> the service's own words, such as
    # "fallback" with 110 / 120 / 12355), "open_web_session", "settings"
    services: dict[str, Any] = field(default_factory=dict)


class Channel(Protocol):
    """A platform adapter: mounts its routes, receives, and sends to one address."""

    name: str

    def routes(self) -> Sequence[web.AbstractRouteDef]:
        """aiohttp routes this channel serves."""
        ...

    async def send(self, address: str, messages: Sequence[Outbound]) -> None:
        """Deliver messages to the child at address, in order."""
        ...

    async def start(self, ctx: ChannelContext) -> None:
        """Keep the context and acquire connections; called once the app starts."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def as_numbered_text(message: Outbound) -> str:
    """Fallback for channels without buttons: options become a numbered list."""
    if not message.options:
        return message.text
    lines = [message.text, ""]
    lines += [f"{i}. {o.label}" for i, o in enumerate(message.options, 1)]
    return "\n".join(lines)


def log_failure(task: asyncio.Task[Any]) -> None:
    """Done-callback for background tasks: an error is logged, never silently dropped."""
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger(__name__).error(
            "background task %s failed", task.get_name(), exc_info=task.exception()
        )
