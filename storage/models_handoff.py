"""Tables of the live handoff: presence, volunteer notes, hit marks, canned replies, lead history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, BigId, utcnow


class Presence(Base):
    """A volunteer's consoles on one process: online while they heartbeat, available or away."""

    __tablename__ = "presence"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # One row per serving process, so closing a console on one process never takes a
    # volunteer offline while their console on another process is still open.
    instance: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="available")  # available | away
    capacity: Mapped[int] = mapped_column(Integer, default=3)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Note(Base):
    """A volunteer's note on a conversation (encrypted: it may retell what the child said)."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    user_id: Mapped[int] = mapped_column(Integer)
    body_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class HitMark(Base):
    """A volunteer's verdict on one detector hit: confirmed or false alarm."""

    __tablename__ = "hit_marks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(BigId, index=True)
    hit_index: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(200))  # lexicon rule id, no child text
    category: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(16))  # confirmed | false_alarm
    user_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("message_id", "hit_index", name="uq_hit_marks_hit"),)


class CannedReply(Base):
    """A reply volunteers can send with one click; admins edit them."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lang: Mapped[str] = mapped_column(String(16), default="zh-CN")
    title: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(String(2000))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LeadEvent(Base):
    """One change of a lead's work-order state, with who, when and an encrypted note."""

    __tablename__ = "lead_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    username: Mapped[str] = mapped_column(String(64))
    note_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Assignment(Base):
    """Who held a conversation and when: the basis of least-privilege reads."""

    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
