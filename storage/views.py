"""Plain, decrypted snapshots of rows: what leaves the storage package instead of ORM objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ConversationView:
    """A conversation as the core sees it, with address and slots decrypted."""

    id: str
    channel: str
    reporter_id: str
    address: str
    script_id: str
    script_lang: str
    script_version: str
    state: str
    slots: Mapping[str, Any]
    mode: str
    risk_level: int
    categories: tuple[str, ...]
    flags: Mapping[str, Any]
    assigned_to: int | None
    created_at: datetime
    updated_at: datetime
    last_inbound_at: datetime | None = None
    closed_at: datetime | None = None
    waiting_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class MessageView:
    """One stored message, body decrypted; `options` only on bot replies."""

    id: int
    conversation_id: str
    direction: str
    sender: str
    kind: str
    text: str
    options: tuple[Mapping[str, str], ...] = ()
    risk_level: int | None = None
    categories: tuple[str, ...] = ()
    assessment: Mapping[str, Any] | None = None
    in_reply_to: int | None = None
    created_at: datetime | None = None
    processed_at: datetime | None = None
    channel_message_id: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class LeadView:
    """A lead (线索), summary decrypted."""

    id: int
    code: str
    conversation_id: str
    category: str | None
    risk_level: int
    summary: str | None
    district: str | None
    state: str
    created_at: datetime
    updated_at: datetime
