"""Repository of the live handoff: presence, queue, assignments, notes, hit marks, leads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from storage.models import Conversation, Lead, utcnow
from storage.models_handoff import (
    Assignment,
    CannedReply,
    HitMark,
    LeadEvent,
    Note,
    Presence,
)
from storage.store import Store, _aware
from storage.views import ConversationView, LeadView

LEAD_STATES: tuple[str, ...] = (
    "accepted",  # 受理
    "dispatched",  # 派单
    "in_hand",  # 办理
    "replied",  # 答复
    "closed",  # 办结
    "followed_up",  # 回访
    "evaluated",  # 评价
)
LEAD_CATEGORIES: tuple[str, ...] = (
    "criminal",  # 刑事
    "civil",  # 民事
    "administrative",  # 行政
    "public_interest",  # 公益诉讼
    "consultation",  # 咨询
)


class InvalidTransition(ValueError):
    """A lead cannot move to that state from where it is."""


@dataclass(frozen=True, slots=True)
class PresenceView:
    """A volunteer's presence and load."""

    user_id: int
    status: str
    capacity: int
    active: int
    last_seen_at: datetime

    @property
    def has_room(self) -> bool:
        """Available, with fewer chats than capacity."""
        return self.status == "available" and self.active < self.capacity


def presence_views(rows: Iterable[tuple[int, str, int, int, datetime]]) -> list[PresenceView]:
    """One view per volunteer, by user id, from presence rows (user, status, capacity, open
    chats, last seen): the freshest row of each user speaks for them (one row per process)."""
    views: dict[int, PresenceView] = {}
    for user_id, status, capacity, active, seen in sorted(
        rows, key=lambda r: -_aware(r[4]).timestamp()
    ):
        views.setdefault(
            user_id, PresenceView(user_id, status, int(capacity), int(active), _aware(seen))
        )
    return sorted(views.values(), key=lambda v: v.user_id)


@dataclass(frozen=True, slots=True)
class WaitingBrief:
    """A waiting conversation as the SLA clock sees it."""

    id: str
    risk_level: int
    waiting_since: datetime
    escalated: bool
    lang: str


@dataclass(frozen=True, slots=True)
class NoteView:
    """A volunteer's note."""

    id: int
    conversation_id: str
    user_id: int
    text: str
    created_at: datetime


class HandoffRepo:
    """Queries and writes of the handoff that are not part of a conversation's turn."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- presence --------------------------------------------------------------------------

    async def heartbeat(
        self, user_id: int, instance: str, *, capacity: int, status: str | None = None
    ) -> None:
        """Mark a volunteer's consoles on one process alive now; status applies everywhere."""

        async def op() -> None:
            async with self.store._tx() as s:
                if status is not None:
                    await s.execute(
                        update(Presence).where(Presence.user_id == user_id).values(status=status)
                    )
                row = await s.get(Presence, (user_id, instance))
                if row is None:
                    others = await s.execute(
                        select(Presence.status)
                        .where(Presence.user_id == user_id)
                        .order_by(Presence.last_seen_at.desc())
                        .limit(1)
                    )
                    s.add(
                        Presence(
                            user_id=user_id,
                            instance=instance,
                            status=status or others.scalar_one_or_none() or "available",
                            capacity=capacity,
                            last_seen_at=utcnow(),
                        )
                    )
                else:
                    row.last_seen_at, row.capacity = utcnow(), capacity

        try:
            await self.store._retry(op)
        except IntegrityError:
            # Two consoles of one volunteer on this process beat at once and the other inserted
            # the row first: now it exists, so this beat is an update.
            await self.store._retry(op)

    async def go_offline(self, user_id: int, instance: str) -> None:
        """The volunteer's last console on this process closed."""

        async def op() -> None:
            async with self.store._tx() as s:
                await s.execute(
                    delete(Presence).where(
                        Presence.user_id == user_id, Presence.instance == instance
                    )
                )

        await self.store._retry(op)

    async def online(self, ttl: timedelta) -> list[PresenceView]:
        """Volunteers with a console heartbeat fresher than ttl anywhere, with their open chats."""
        cutoff = utcnow() - ttl

        async def op() -> list[PresenceView]:
            async with self.store._sessions() as s:
                active = (
                    select(Conversation.assigned_to, func.count().label("n"))
                    .where(Conversation.mode == "human")
                    .group_by(Conversation.assigned_to)
                    .subquery()
                )
                q = (
                    select(Presence, func.coalesce(active.c.n, 0))
                    .outerjoin(active, active.c.assigned_to == Presence.user_id)
                    .where(Presence.last_seen_at >= cutoff)
                )
                return presence_views(
                    (p.user_id, p.status, p.capacity, n, p.last_seen_at)
                    for p, n in (await s.execute(q)).all()
                )

        return await self.store._retry(op)

    # ---- queue and assignments ---------------------------------------------------------------

    async def queue(self) -> list[ConversationView]:
        """Waiting conversations: highest risk first, then longest waiting."""

        async def op() -> list[ConversationView]:
            async with self.store._sessions() as s:
                q = (
                    select(Conversation)
                    .where(Conversation.mode == "waiting")
                    .order_by(Conversation.risk_level.desc(), Conversation.waiting_since)
                )
                return [self.store._conv_view(r) for r in (await s.execute(q)).scalars()]

        return await self.store._retry(op)

    async def waiting_brief(self) -> list[WaitingBrief]:
        """The waiting conversations in a few columns: what the once-a-second clock needs."""

        async def op() -> list[WaitingBrief]:
            async with self.store._sessions() as s:
                q = select(
                    Conversation.id,
                    Conversation.risk_level,
                    Conversation.waiting_since,
                    Conversation.flags,
                    Conversation.script_lang,
                ).where(Conversation.mode == "waiting", Conversation.waiting_since.is_not(None))
                return [
                    WaitingBrief(
                        cid, level, _aware(since), bool((flags or {}).get("escalated")), lang
                    )
                    for cid, level, since, flags, lang in (await s.execute(q)).all()
                    if since is not None
                ]

        return await self.store._retry(op)

    async def held_brief(self) -> list[tuple[str, int, datetime]]:
        """Chats a person holds now: (conversation id, holder, since when they hold it)."""

        async def op() -> list[tuple[str, int, datetime]]:
            async with self.store._sessions() as s:
                q = (
                    select(Conversation.id, Conversation.assigned_to, Assignment.started_at)
                    .join(
                        Assignment,
                        and_(
                            Assignment.conversation_id == Conversation.id,
                            Assignment.user_id == Conversation.assigned_to,
                            Assignment.ended_at.is_(None),
                        ),
                    )
                    .where(Conversation.mode == "human")
                )
                return [
                    (cid, int(uid), _aware(since))
                    for cid, uid, since in (await s.execute(q)).all()
                    if uid is not None
                ]

        return await self.store._retry(op)

    async def has_held(self, user_id: int, conversation_id: str) -> bool:
        """True if the user holds or once held the conversation."""

        async def op() -> bool:
            async with self.store._sessions() as s:
                q = select(func.count()).where(
                    Assignment.user_id == user_id, Assignment.conversation_id == conversation_id
                )
                return bool((await s.execute(q)).scalar_one())

        return await self.store._retry(op)

    async def held_ids(self, user_id: int) -> list[str]:
        """Ids of conversations the user holds or held."""

        async def op() -> list[str]:
            async with self.store._sessions() as s:
                q = select(Assignment.conversation_id).where(Assignment.user_id == user_id)
                return sorted(set((await s.execute(q)).scalars()))

        return await self.store._retry(op)

    # ---- notes, hit marks, canned replies ---------------------------------------------------

    async def add_note(self, conversation_id: str, user_id: int, text: str) -> NoteView:
        """Keep a volunteer's note (encrypted)."""

        async def op() -> NoteView:
            async with self.store._tx() as s:
                row = Note(
                    conversation_id=conversation_id,
                    user_id=user_id,
                    body_enc=self.store.vault.encrypt(text),
                    created_at=utcnow(),
                )
                s.add(row)
                await s.flush()
                return NoteView(row.id, conversation_id, user_id, text, _aware(row.created_at))

        return await self.store._retry(op)

    async def notes(self, conversation_id: str) -> list[NoteView]:
        """Notes on a conversation, oldest first."""

        async def op() -> list[NoteView]:
            async with self.store._sessions() as s:
                q = select(Note).where(Note.conversation_id == conversation_id).order_by(Note.id)
                return [
                    NoteView(
                        r.id,
                        r.conversation_id,
                        r.user_id,
                        self.store.vault.decrypt(r.body_enc),
                        _aware(r.created_at),
                    )
                    for r in (await s.execute(q)).scalars()
                ]

        return await self.store._retry(op)

    async def mark_hit(
        self,
        message_id: int,
        hit_index: int,
        *,
        rule: str,
        category: str,
        verdict: str,
        user_id: int,
    ) -> None:
        """Record (or change) the verdict on one hit."""

        async def op() -> None:
            async with self.store._tx() as s:
                q = select(HitMark).where(
                    HitMark.message_id == message_id, HitMark.hit_index == hit_index
                )
                row = (await s.execute(q)).scalar_one_or_none()
                if row is None:
                    s.add(
                        HitMark(
                            message_id=message_id,
                            hit_index=hit_index,
                            rule=rule,
                            category=category,
                            verdict=verdict,
                            user_id=user_id,
                            created_at=utcnow(),
                        )
                    )
                else:
                    row.verdict, row.user_id, row.created_at = verdict, user_id, utcnow()

        try:
            await self.store._retry(op)
        except IntegrityError:  # two marks raced; the second call updates
            await self.store._retry(op)

    async def hit_marks(self, message_ids: Sequence[int]) -> dict[tuple[int, int], str]:
        """Verdicts keyed by (message id, hit index)."""

        async def op() -> dict[tuple[int, int], str]:
            async with self.store._sessions() as s:
                q = select(HitMark).where(HitMark.message_id.in_(list(message_ids)))
                return {
                    (m.message_id, m.hit_index): m.verdict for m in (await s.execute(q)).scalars()
                }

        return await self.store._retry(op) if message_ids else {}

    async def hit_precision(self) -> list[dict[str, Any]]:
        """Per rule: confirmed, false alarms and precision, for tuning the detector."""

        async def op() -> list[dict[str, Any]]:
            async with self.store._sessions() as s:
                q = select(HitMark.rule, HitMark.category, HitMark.verdict, func.count()).group_by(
                    HitMark.rule, HitMark.category, HitMark.verdict
                )
                counts: dict[tuple[str, str], dict[str, int]] = {}
                for rule, cat, verdict, n in (await s.execute(q)).all():
                    counts.setdefault((rule, cat), {})[verdict] = int(n)
            rows = []
            for (rule, cat), c in sorted(counts.items()):
                ok, bad = c.get("confirmed", 0), c.get("false_alarm", 0)
                rows.append(
                    {
                        "rule": rule,
                        "category": cat,
                        "confirmed": ok,
                        "false_alarm": bad,
                        "precision": round(ok / (ok + bad), 3) if ok + bad else None,
                    }
                )
            return rows

        return await self.store._retry(op)

    async def canned(self, lang: str | None = None) -> list[dict[str, Any]]:
        """Canned replies, optionally of one language."""

        async def op() -> list[dict[str, Any]]:
            async with self.store._sessions() as s:
                q = select(CannedReply).order_by(CannedReply.id)
                if lang:
                    q = q.where(CannedReply.lang == lang)
                return [
                    {"id": r.id, "lang": r.lang, "title": r.title, "text": r.text}
                    for r in (await s.execute(q)).scalars()
                ]

        return await self.store._retry(op)

    async def save_canned(
        self, *, reply_id: int | None, lang: str, title: str, text: str
    ) -> dict[str, Any]:
        """Create or change a canned reply (admins)."""

        async def op() -> dict[str, Any]:
            async with self.store._tx() as s:
                row = await s.get(CannedReply, reply_id) if reply_id else None
                if reply_id and row is None:
                    raise LookupError(reply_id)
                if row is None:
                    row = CannedReply()
                    s.add(row)
                row.lang, row.title, row.text, row.updated_at = lang, title, text, utcnow()
                await s.flush()
                return {"id": row.id, "lang": row.lang, "title": row.title, "text": row.text}

        return await self.store._retry(op)

    async def delete_canned(self, reply_id: int) -> bool:
        """Remove a canned reply; False if there was none."""

        async def op() -> bool:
            async with self.store._tx() as s:
                r = await s.execute(delete(CannedReply).where(CannedReply.id == reply_id))
                return bool(getattr(r, "rowcount", 0))

        return await self.store._retry(op)

    # ---- leads ------------------------------------------------------------------------------

    async def leads(self, conversation_ids: Sequence[str] | None = None) -> list[LeadView]:
        """Leads, newest first; only those of conversation_ids when given."""

        async def op() -> list[LeadView]:
            async with self.store._sessions() as s:
                q = select(Lead).order_by(Lead.updated_at.desc()).limit(1000)
                if conversation_ids is not None:
                    q = q.where(Lead.conversation_id.in_(list(conversation_ids)))
                return [self.store._lead_view(r) for r in (await s.execute(q)).scalars()]

        return await self.store._retry(op)

    async def get_lead(self, lead_id: int) -> LeadView | None:
        """One lead."""

        async def op() -> LeadView | None:
            async with self.store._sessions() as s:
                row = await s.get(Lead, lead_id)
                return self.store._lead_view(row) if row else None

        return await self.store._retry(op)

    async def set_lead_state(
        self, lead_id: int, to_state: str, *, user_id: int | None, username: str, note: str | None
    ) -> LeadView:
        """Move a lead one step along the work-order cycle (or back, to correct a mistake)."""
        if to_state not in LEAD_STATES:
            raise InvalidTransition(f"unknown state {to_state!r}")

        async def op() -> LeadView:
            async with self.store._tx() as s:
                q = select(Lead).where(Lead.id == lead_id)
                if self.store.is_postgres:
                    q = q.with_for_update()
                row = (await s.execute(q)).scalar_one_or_none()
                if row is None:
                    raise LookupError(lead_id)
                here, there = LEAD_STATES.index(row.state), LEAD_STATES.index(to_state)
                if there not in (here + 1, here - 1):
                    raise InvalidTransition(
                        f"a lead in {row.state!r} can move to "
                        f"{' or '.join(repr(x) for x in _neighbours(row.state))}, not {to_state!r}"
                    )
                s.add(
                    LeadEvent(
                        lead_id=lead_id,
                        from_state=row.state,
                        to_state=to_state,
                        user_id=user_id,
                        username=username,
                        note_enc=self.store.vault.encrypt(note) if note else None,
                        created_at=utcnow(),
                    )
                )
                row.state, row.updated_at = to_state, utcnow()
                await s.flush()
                return self.store._lead_view(row)

        return await self.store._retry(op)

    async def lead_history(self, lead_id: int) -> list[dict[str, Any]]:
        """Every state change of a lead: from, to, who, when, note."""

        async def op() -> list[dict[str, Any]]:
            async with self.store._sessions() as s:
                q = select(LeadEvent).where(LeadEvent.lead_id == lead_id).order_by(LeadEvent.id)
                return [
                    {
                        "from": e.from_state,
                        "to": e.to_state,
                        "user_id": e.user_id,
                        "username": e.username,
                        "note": self.store.vault.decrypt(e.note_enc) if e.note_enc else None,
                        "at": _aware(e.created_at).isoformat(),
                    }
                    for e in (await s.execute(q)).scalars()
                ]

        return await self.store._retry(op)


def _neighbours(state: str) -> list[str]:
    i = LEAD_STATES.index(state)
    return [LEAD_STATES[j] for j in (i + 1, i - 1) if 0 <= j < len(LEAD_STATES)]
