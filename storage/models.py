"""SQLAlchemy table definitions. Child-written text only ever appears in *_enc columns."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER
NOT_CLOSED = "mode <> 'closed'"


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the tables use."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Conversation(Base):
    """One child's conversation on one channel: script position, mode and risk so far."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    reporter_id: Mapped[str] = mapped_column(String(64), index=True)  # HMAC pseudonym
    address_enc: Mapped[bytes] = mapped_column(LargeBinary)
    token_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    script_id: Mapped[str] = mapped_column(String(64))
    script_lang: Mapped[str] = mapped_column(String(16))
    script_version: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(64))
    slots_enc: Mapped[bytes] = mapped_column(LargeBinary)  # JSON; slots hold what the child wrote
    mode: Mapped[str] = mapped_column(String(16), default="bot")  # bot|waiting|human|closed
    risk_level: Mapped[int] = mapped_column(Integer, default=0)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    flags: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    assigned_to: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    waiting_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_inbound_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_conversations_channel_reporter", "channel", "reporter_id"),
        # One open conversation per child and channel, whichever process opens it (0006).
        Index(
            "uq_conversations_open_reporter",
            "channel",
            "reporter_id",
            unique=True,
            sqlite_where=text(NOT_CLOSED),
            postgresql_where=text(NOT_CLOSED),
        ),
        Index("ix_conversations_mode", "mode", "risk_level", "waiting_since"),
    )


class Message(Base):
    """One message in or out; inbound ones are unique per (channel, platform message id)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    channel_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    direction: Mapped[str] = mapped_column(String(8))  # in | out
    sender: Mapped[str] = mapped_column(String(64))  # child | bot | volunteer:<id> | system
    kind: Mapped[str] = mapped_column(String(16), default="text")
    body_enc: Mapped[bytes] = mapped_column(LargeBinary)
    risk_level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    categories: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    assessment_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # has hits
    in_reply_to: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("channel", "channel_message_id", name="uq_messages_channel_msgid"),
        Index(
            "ix_messages_unanswered",
            "created_at",
            sqlite_where=text("direction = 'in' AND processed_at IS NULL"),
            postgresql_where=text("direction = 'in' AND processed_at IS NULL"),
        ),
    )


class Event(Base):
    """Append-only log of what happened to a conversation (never child-written text)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64), default="system")
    data: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Lead(Base):
    """A lead (线索) a child can come back to with its code."""

    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    risk_level: Mapped[int] = mapped_column(Integer, default=0)
    summary_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    district_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # child-typed
    state: Mapped[str] = mapped_column(String(16), default="accepted")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KeyValue(Base):
    """Small shared values with an expiry: de-duplication keys, cached access tokens."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(String(2000))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ScriptVersion(Base):
    """A dialogue script an admin uploaded; every version kept for pinned conversations."""

    __tablename__ = "script_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    script_id: Mapped[str] = mapped_column(String(64))
    lang: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("script_id", "lang", "version", name="uq_script_versions_version"),
    )
