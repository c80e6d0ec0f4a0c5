"""The seam between platforms and the core: message types and the Channel protocol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
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
    raw: Any = field(default=None, compare=False, repr=False)  # for logging only


OnMessage = Callable[[Inbound], Awaitable[None]]


class Channel(Protocol):
    """A platform adapter: mounts its routes, receives, and sends to one address."""

    name: str

    def routes(self, on_message: OnMessage) -> Sequence[web.AbstractRouteDef]:
        """aiohttp routes this channel serves; each inbound message goes to on_message."""
        ...

    async def send(self, address: str, messages: Sequence[Outbound]) -> None:
        """Deliver messages to the child at address, in order."""
        ...

    async def start(self) -> None:
        """Acquire connections; called once the app starts."""
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
