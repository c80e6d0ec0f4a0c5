"""Retention purge: what a child wrote is kept only as long as the case needs it.

A conversation that has been closed for longer than the retention period, and whose leads are
all closed (办结), loses everything written by or about the child: its messages, the volunteers'
notes and hit marks, the notes on its leads' state changes, the channel address and the script
slots, and its leads' summaries and districts. What stays has no child-written text: the
conversation's mode, level, categories and timestamps, the lead codes and their states, the
event and audit logs. A child who comes back with a lead code is still recognised, and a web
chat's token still opens the closed chat, so its page says the chat has ended; the transcript is
gone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from storage.handoff_repo import LEAD_STATES
from storage.models import Conversation, Event, Lead, Message, utcnow
from storage.models_handoff import HitMark, LeadEvent, Note
from storage.store import Store

FINAL_LEAD_STATE = LEAD_STATES[-1]
BATCH = 200  # conversations per transaction: a purge never holds the write lock for long


async def purge_closed(store: Store, closed_before: datetime) -> int:
    """Purge conversations closed before closed_before whose leads are all closed; how many."""
    total = 0
    while True:
        n = await store._retry(lambda: _purge_batch(store, closed_before))
        total += n
        if n < BATCH:
            return total


async def _purge_batch(store: Store, closed_before: datetime) -> int:
    open_lead = (
        select(Lead.id)
        .where(Lead.conversation_id == Conversation.id, Lead.state != FINAL_LEAD_STATE)
        .exists()
    )
    async with store._tx() as s:
        ids = list(
            (
                await s.execute(
                    select(Conversation.id)
                    .where(
                        Conversation.mode == "closed",
                        Conversation.closed_at < closed_before,
                        Conversation.address_enc != b"",  # b"": purged already
                        ~open_lead,
                    )
                    .limit(BATCH)
                    # several serve processes purge hourly: each takes rows nobody else holds
                    # (PostgreSQL; SQLite has one writer at a time anyway)
                    .with_for_update(skip_locked=True)
                )
            ).scalars()
        )
        if not ids:
            return 0
        message_ids = select(Message.id).where(Message.conversation_id.in_(ids))
        await s.execute(delete(HitMark).where(HitMark.message_id.in_(message_ids)))
        await s.execute(delete(Message).where(Message.conversation_id.in_(ids)))
        await s.execute(delete(Note).where(Note.conversation_id.in_(ids)))
        await s.execute(
            update(Lead)
            .where(Lead.conversation_id.in_(ids))
            .values(summary_enc=None, district_enc=None)
        )
        lead_ids = select(Lead.id).where(Lead.conversation_id.in_(ids))
        await s.execute(
            update(LeadEvent).where(LeadEvent.lead_id.in_(lead_ids)).values(note_enc=None)
        )
        await s.execute(
            update(Conversation)
            .where(Conversation.id.in_(ids))
            .values(address_enc=b"", slots_enc=b"", updated_at=utcnow())
        )
        now = utcnow()
        s.add_all(
            Event(
                conversation_id=cid,
                type="conversation.purged",
                data={"reason": "retention"},
                actor="system",
                created_at=now,
            )
            for cid in ids
        )
        return len(ids)
