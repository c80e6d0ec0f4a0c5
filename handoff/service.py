"""The live handoff: presence, offers, first-to-accept, relay, transfer, release, close, SLA."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from handoff.bus import EventBus
from handoff.notices import notice
from storage.handoff_repo import LEAD_CATEGORIES, HandoffRepo, PresenceView
from storage.models import utcnow
from storage.store import Store, Turn
from storage.views import ConversationView, LeadView, MessageView

log = logging.getLogger(__name__)

Deliver = Callable[[ConversationView, Sequence[str]], Awaitable[bool | None]]
ModeChanged = Callable[[ConversationView], Awaitable[None]]
CONSOLE_TOPIC = "console"  # every console: the queue changed
SUPERVISORS_TOPIC = "supervisors"  # escalations, and every live message for oversight
LEVEL_LABELS = ("none", "routine", "urgent", "imminent")


def volunteer_topic(user_id: int) -> str:
    """Bus topic of one volunteer's consoles (offers, messages of chats they hold)."""
    return f"volunteer.{user_id}"


class HandoffConflict(Exception):
    """The conversation is not in a state that allows this (e.g. someone else accepted it)."""


class NotHolder(PermissionError):
    """The user does not hold this conversation."""


@dataclass(frozen=True)
class Policy:
    """Timings and limits of the handoff."""

    sla_urgent: timedelta = timedelta(seconds=60)
    sla_imminent: timedelta = timedelta(seconds=30)
    reassure_every: timedelta = timedelta(seconds=90)
    presence_ttl: timedelta = timedelta(seconds=45)
    capacity: int = 3
    # A chat whose holder has had no live console for presence_ttl, and which they have held
    # at least this long, goes back to the queue: a child must not talk into a closed laptop.
    holder_grace: timedelta = timedelta(seconds=120)


def conversation_card(conv: ConversationView, position: int | None = None) -> dict[str, Any]:
    """What a queue entry or an offer shows before anyone reads the transcript."""
    return {
        "id": conv.id,
        "channel": conv.channel,
        "mode": conv.mode,
        "risk_level": LEVEL_LABELS[conv.risk_level],
        "risk_rank": conv.risk_level,
        "categories": list(conv.categories),
        "waiting_since": conv.waiting_since.isoformat() if conv.waiting_since else None,
        "assigned_to": conv.assigned_to,
        "escalated": bool(conv.flags.get("escalated")),
        "lang": conv.script_lang,
        "position": position,
    }


def offer_event(conv: ConversationView, escalated: bool) -> dict[str, Any]:
    """The event that rings a volunteer's console."""
    return {
        "type": "handoff.offered",
        "conversation": conversation_card(conv),
        "escalated": escalated,
    }


def message_event(msg: MessageView) -> dict[str, Any]:
    """A message as consoles receive it (hits included so the console can highlight them)."""
    return {
        "type": "message",
        "conversation_id": msg.conversation_id,
        "message": {
            "id": msg.id,
            "direction": msg.direction,
            "sender": msg.sender,
            "kind": msg.kind,
            "text": msg.text,
            "risk_level": msg.risk_level,
            "assessment": dict(msg.assessment) if msg.assessment else None,
            "created_at": msg.created_at.isoformat() if msg.created_at else None,
        },
    }


class HandoffService:
    """Everything that moves a conversation between the bot, the queue and a volunteer."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        deliver: Deliver,
        policy: Policy | None = None,
        clock: Callable[[], datetime] = utcnow,
        mode_changed: ModeChanged | None = None,
    ) -> None:
        self.store = store
        self.repo = HandoffRepo(store)
        self.bus = bus
        self.deliver = deliver
        self.policy = policy or Policy()
        self.clock = clock
        self.mode_changed = mode_changed
        self.instance = uuid.uuid4().hex  # this process, for per-process presence rows
        self._reminded: set[tuple[str, int, int]] = set()  # reminders this process has tried

    # ---- presence (the pipeline's question: is anybody there?) ------------------------------

    async def online(self) -> list[PresenceView]:
        """Volunteers with a live console."""
        return await self.repo.online(self.policy.presence_ttl)

    async def volunteers_available(self) -> int:
        """Online, available volunteers with room for one more chat."""
        return sum(1 for p in await self.online() if p.has_room)

    async def connect(self, user_id: int) -> None:
        """A console opened: the volunteer is online and, if available, offered the queue."""
        await self.heartbeat(user_id)
        me = {p.user_id: p for p in await self.online()}.get(user_id)
        if me is not None and me.status == "available":
            await self.offer_queue_to(user_id)

    async def heartbeat(self, user_id: int) -> None:
        """A console of user_id on this process is alive."""
        await self.repo.heartbeat(user_id, self.instance, capacity=self.policy.capacity)

    async def set_status(self, user_id: int, status: str) -> None:
        """available | away; becoming available offers the queue."""
        if status not in ("available", "away"):
            raise ValueError("status must be 'available' or 'away'")
        await self.repo.heartbeat(
            user_id, self.instance, capacity=self.policy.capacity, status=status
        )
        if status == "available":
            await self.offer_queue_to(user_id)

    async def disconnect(self, user_id: int) -> None:
        """The volunteer's last console on this process closed."""
        await self.repo.go_offline(user_id, self.instance)

    # ---- the pipeline's hooks ------------------------------------------------------------------

    async def notify(self, conversation: ConversationView, changes: Sequence[str]) -> None:
        """After a turn: offer new handoffs, re-rank the queue when a waiting child's risk rose."""
        if "queued" in changes:
            await self.offer(conversation)
        elif conversation.mode == "waiting" and "risk" in changes and conversation.risk_level >= 3:
            # Danger now while waiting: ring every console and the supervisors at once, even if
            # the wait was already escalated at the urgent SLA (the clock would not ring again).
            await self.offer(conversation, escalated=True)
        if "queued" in changes or (conversation.mode == "waiting" and "risk" in changes):
            await self.bus.publish(
                CONSOLE_TOPIC, {"type": "queue.changed", "conversation_id": conversation.id}
            )

    async def relay_to_volunteer(self, conversation: ConversationView, msg: MessageView) -> None:
        """A child's message, live, to whoever holds the conversation (and supervisors)."""
        event = message_event(msg)
        if conversation.assigned_to is not None:
            await self.bus.publish(volunteer_topic(conversation.assigned_to), event)
        await self.bus.publish(SUPERVISORS_TOPIC, event)

    # ---- offers and the queue ------------------------------------------------------------------

    async def queue(self) -> list[dict[str, Any]]:
        """The waiting conversations as cards, in the order they will be served."""
        return [conversation_card(c, i) for i, c in enumerate(await self.repo.queue(), 1)]

    async def offer(self, conv: ConversationView, *, escalated: bool = False) -> int:
        """Offer a waiting conversation: to volunteers with room, or to everyone online."""
        online = await self.online()
        targets = [p for p in online if escalated or p.has_room]
        event = offer_event(conv, escalated)
        for p in targets:
            await self.bus.publish(volunteer_topic(p.user_id), event)
        if escalated:
            await self.bus.publish(SUPERVISORS_TOPIC, {**event, "type": "handoff.escalated"})
        return len(targets)

    async def offer_queue_to(self, user_id: int) -> None:
        """Offer everything waiting to one volunteer who just became available."""
        for conv in await self.repo.queue():
            await self.bus.publish(
                volunteer_topic(user_id), offer_event(conv, bool(conv.flags.get("escalated")))
            )

    async def enqueue(
        self, turn: Turn, *, reason: str, level: int, actor: str = "system"
    ) -> str | None:
        """Put a bot conversation in the queue inside its turn; what to tell the child.

        The one place a conversation starts waiting, whoever asked (detector, script,
        supervisor). None when it is already waiting or with a person.
        """
        conv = turn.conversation
        if conv.mode in ("waiting", "human"):
            return None
        await turn.update(mode="waiting", waiting_since=self.clock())
        await turn.add_event(
            "handoff.requested", {"reason": reason, "level": LEVEL_LABELS[level]}, actor=actor
        )
        if await turn.volunteers_with_room(self.policy.presence_ttl) == 0:
            return notice("after_hours", conv.script_lang)
        position = await turn.waiting_ahead() + 1
        return notice("handoff_requested", conv.script_lang, position=position)

    async def request(self, conversation_id: str, *, by: str) -> None:
        """Queue a conversation for a human on a supervisor's word."""
        async with self.store.turn(conversation_id) as turn:
            if turn.conversation.mode != "bot":
                raise HandoffConflict(f"conversation is {turn.conversation.mode}")
            text = await self.enqueue(
                turn, reason="supervisor", level=turn.conversation.risk_level, actor=by
            )
            assert text is not None  # it was in bot mode, under the lock
            await turn.add_outbound(text, sender="system")
            conv = turn.conversation
        await self.deliver(conv, [text])
        await self.notify(conv, ["queued"])

    # ---- one volunteer's actions ---------------------------------------------------------------

    async def accept(self, conversation_id: str, user_id: int, username: str) -> ConversationView:
        """First to accept wins (under the conversation's lock); anyone later gets a conflict."""
        async with self.store.turn(conversation_id) as turn:
            conv = turn.conversation
            if conv.mode != "waiting":
                holder = conv.assigned_to
                raise HandoffConflict(
                    "already accepted by someone else"
                    if conv.mode == "human" and holder != user_id
                    else f"conversation is {conv.mode}"
                )
            await turn.assign(user_id)
            conv = await turn.update(
                mode="human",
                waiting_since=None,
                flags={**conv.flags, "human_seen": True, "escalated": False},
            )
            await turn.add_event("handoff.accepted", {"user_id": user_id}, actor=username)
            text = notice("volunteer_joined", conv.script_lang)
            await turn.add_outbound(text, sender="system")
        await self.deliver(conv, [text])
        await self._announce(conv, "conversation.assigned")
        return conv

    async def send(self, conversation_id: str, user_id: int, text: str) -> MessageView:
        """A volunteer's words to the child: stored, then delivered through the child's channel."""
        async with self.store.turn(conversation_id) as turn:
            conv = self._held(turn.conversation, user_id)
            msg = await turn.add_outbound(text, sender=f"volunteer:{user_id}")
        if await self.deliver(conv, [text]) is False:
            # Stored but not delivered (e.g. WeChat's 48-hour window is over): the volunteer
            # must know the child has not seen it.
            await self.store.add_event(
                conv.id, "delivery.failed", {"message_id": msg.id}, actor=f"volunteer:{user_id}"
            )
            await self.bus.publish(
                volunteer_topic(user_id),
                {"type": "delivery.failed", "conversation_id": conv.id, "message_id": msg.id},
            )
        await self.bus.publish(volunteer_topic(user_id), message_event(msg))
        await self.bus.publish(SUPERVISORS_TOPIC, message_event(msg))
        return msg

    async def transfer(
        self, conversation_id: str, user_id: int, username: str, to_user_id: int
    ) -> ConversationView:
        """Hand the conversation to another volunteer or supervisor."""
        async with self.store.turn(conversation_id) as turn:
            self._held(turn.conversation, user_id)
            await turn.assign(to_user_id)
            await turn.add_event(
                "handoff.transferred", {"from": user_id, "to": to_user_id}, actor=username
            )
            conv = turn.conversation
        await self._announce(conv, "conversation.assigned", extra_user=user_id)
        return conv

    async def release(self, conversation_id: str, user_id: int, username: str) -> ConversationView:
        """Give the conversation back to the bot (the child keeps talking to the script)."""
        async with self.store.turn(conversation_id) as turn:
            self._held(turn.conversation, user_id)
            await turn.assign(None)
            conv = await turn.update(mode="bot")
            await turn.add_event("handoff.released", {"user_id": user_id}, actor=username)
            text = notice("back_to_bot", conv.script_lang)
            await turn.add_outbound(text, sender="system")
        await self.deliver(conv, [text])
        await self._announce(conv, "conversation.released", extra_user=user_id)
        return conv

    async def close(
        self,
        conversation_id: str,
        user_id: int,
        username: str,
        *,
        category: str,
        summary: str,
        district: str | None = None,
    ) -> LeadView:
        """End the chat and create or update its lead; the child is told the lead code."""
        if category not in LEAD_CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(LEAD_CATEGORIES)}")
        from dialogs.leadcode import new_lead_code

        async with self.store.turn(conversation_id) as turn:
            conv = self._held(turn.conversation, user_id)
            returning = conv.flags.get("returning_lead")
            code = str(returning or conv.slots.get("lead_code") or new_lead_code())
            lead = await turn.upsert_lead(
                code,
                linked=bool(returning),
                risk_level=conv.risk_level,
                summary=summary,
                district=district or lead_district(conv.slots),
                category=category,
            )
            await turn.assign(None)
            conv = await turn.update(
                mode="closed", closed_at=self.clock(), slots={**conv.slots, "lead_code": code}
            )
            await turn.add_event(
                "conversation.closed", {"by": "volunteer", "category": category}, actor=username
            )
            text = notice("closed", conv.script_lang) + f" ({code})"
            await turn.add_outbound(text, sender="system")
        await self.deliver(conv, [text])
        await self._announce(conv, "conversation.closed", extra_user=user_id)
        return lead

    def _held(self, conv: ConversationView, user_id: int) -> ConversationView:
        if conv.mode != "human" or conv.assigned_to != user_id:
            raise NotHolder("you do not hold this conversation")
        return conv

    async def _announce(
        self, conv: ConversationView, type_: str, *, extra_user: int | None = None
    ) -> None:
        if self.mode_changed is not None:
            await self.mode_changed(conv)  # the child's page learns who is answering now
        event = {"type": type_, "conversation": conversation_card(conv)}
        users = {u for u in (conv.assigned_to, extra_user) if u is not None}
        for uid in users:
            await self.bus.publish(volunteer_topic(uid), event)
        await self.bus.publish(SUPERVISORS_TOPIC, event)
        await self.bus.publish(CONSOLE_TOPIC, {"type": "queue.changed", "conversation_id": conv.id})

    # ---- time: SLA escalation and reassurance -------------------------------------------------

    async def tick(self) -> None:
        """Escalate overdue handoffs and reassure waiting children; safe to run in every process."""
        now = self.clock()
        every = self.policy.reassure_every.total_seconds()
        waiting = await self.repo.waiting_brief()
        live = {w.id for w in waiting}
        self._reminded = {k for k in self._reminded if k[0] in live}  # forget finished waits
        # Escalations first, each on its own: one chat that fails (an undecryptable row, a slow
        # send) must not hold back another child's alarm.
        for w in waiting:
            sla = self.policy.sla_imminent if w.risk_level >= 3 else self.policy.sla_urgent
            if now - w.waiting_since >= sla and not w.escalated:
                await _each(w.id, "escalate", self._escalate(w.id))
        await self._requeue_orphans(now)
        for w in waiting:
            waited = now - w.waiting_since
            n = int(waited.total_seconds() // every) if every > 0 else 0
            key = (w.id, int(w.waiting_since.timestamp()), n)
            if n >= 1 and key not in self._reminded:
                self._reminded.add(key)  # ask the shared store once per reminder, not per tick
                await _each(w.id, "reassure", self._reassure(w.id, w.lang, key[1], n))

    async def _reassure(self, conversation_id: str, lang: str, since: int, n: int) -> None:
        if await self.store.kv_add(
            f"reassure:{conversation_id}:{since}:{n}", "1", timedelta(days=1)
        ):
            await self._say(conversation_id, notice("reassure", lang))

    async def _requeue_orphans(self, now: datetime) -> None:
        """Put back in the queue the chats whose holder's console is gone."""
        held = await self.repo.held_brief()
        if not held:
            return
        online = {p.user_id for p in await self.online()}
        for conv_id, holder, since in held:
            if holder in online or now - since < self.policy.holder_grace:
                continue
            await _each(conv_id, "requeue", self._requeue(conv_id, holder, now))

    async def _requeue(self, conv_id: str, holder: int, now: datetime) -> None:
        """One orphaned chat back in the queue, its child told, the consoles offered it."""
        async with self.store.turn(conv_id) as turn:
            conv = turn.conversation
            if conv.mode != "human" or conv.assigned_to != holder:
                return  # changed meanwhile (another process, or the holder came back)
            await turn.assign(None)
            conv = await turn.update(
                mode="waiting",
                waiting_since=now,
                flags={**conv.flags, "escalated": False},
            )
            await turn.add_event("handoff.requeued", {"reason": "holder_offline"})
            text = notice("holder_lost", conv.script_lang)
            await turn.add_outbound(text, sender="system")
        log.warning("conversation %s requeued: its holder %s has no live console", conv_id, holder)
        await self.deliver(conv, [text])
        await self._announce(conv, "conversation.requeued", extra_user=holder)
        await self.offer(conv)

    async def _escalate(self, conversation_id: str) -> None:
        # Decided under the conversation's lock, so exactly one tick in one process escalates
        # each waiting period; accepting clears the flag for the next time it waits.
        async with self.store.turn(conversation_id) as turn:
            now = turn.conversation
            if now.mode != "waiting" or now.flags.get("escalated"):
                return
            conv = await turn.update(flags={**now.flags, "escalated": True})
            await turn.add_event("handoff.escalated", {"level": LEVEL_LABELS[conv.risk_level]})
        reached = await self.offer(conv, escalated=True)
        log.warning(
            "handoff %s not accepted within SLA: re-offered to %d online volunteer(s)",
            conv.id,
            reached,
        )

    async def _say(self, conversation_id: str, text: str) -> None:
        async with self.store.turn(conversation_id) as turn:
            if turn.conversation.mode != "waiting":
                return
            await turn.add_outbound(text, sender="system")
            conv = turn.conversation
        await self.deliver(conv, [text])


async def _each(conversation_id: str, what: str, work: Awaitable[None]) -> None:
    """Run one chat's share of a tick; a failure is logged and the tick goes on."""
    try:
        await work
    except Exception:
        log.exception("handoff clock: could not %s conversation %s", what, conversation_id)


def lead_district(slots: Mapping[str, Any]) -> str | None:
    """The district a lead records from what the child said (a 'district' or 'where' slot)."""
    return _str(slots.get("district") or slots.get("where"))


def _str(v: Any) -> str | None:
    return str(v) if v not in (None, "") else None
