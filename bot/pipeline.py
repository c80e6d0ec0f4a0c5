"""One inbound message, start to finish: store, assess, route (volunteer or script), answer."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from bot.channels.base import Inbound, Outbound, QuickReply
from bot.metrics import Metrics
from dialogs.leadcode import ALPHABET, LENGTH, PREFIX
from dialogs.types import DialogState, Reply, Step
from handoff.notices import notice
from handoff.service import lead_district
from nlp.types import Assessment, Level
from storage.models import utcnow
from storage.store import ConversationAlreadyOpen, KeyedLocks, Store, Turn
from storage.views import ConversationView, MessageView

log = logging.getLogger(__name__)

# A lead code quoted anywhere in a message ("我的编号是 QT-7K3M9P").
LEAD_CODE_IN_TEXT = re.compile(rf"{PREFIX}[{ALPHABET}]{{{LENGTH}}}")

Assess = Callable[[str, Sequence[str]], Assessment]
Deliver = Callable[[ConversationView, Sequence[Outbound]], Awaitable[object]]


class Dialogs(Protocol):
    """What the pipeline needs of the dialogue engine."""

    def start(self, script_id: str = "intake", lang: str = "zh-CN") -> Step:
        """The greeting step of a script."""
        ...

    def step(self, state: DialogState, text: str, level: Level = Level.NONE) -> Step:
        """Advance one conversation by one input."""
        ...


class Desk(Protocol):
    """What the pipeline needs of the handoff desk: presence and live notifications."""

    async def enqueue(self, turn: Turn, *, reason: str, level: int) -> str | None:
        """Queue the conversation inside its turn; what to tell the child (None: already)."""
        ...

    async def notify(self, conversation: ConversationView, changes: Sequence[str]) -> None:
        """Tell consoles what this turn changed ('queued', 'risk', 'message', ...)."""
        ...

    async def relay_to_volunteer(self, conversation: ConversationView, msg: MessageView) -> None:
        """Push a child's message to the console of the volunteer holding the conversation."""
        ...


class ConversationClosed(Exception):
    """A message arrived for a conversation that has ended."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """An inbound message safely stored; `is_new` is False for a platform retry."""

    conversation_id: str
    message: MessageView
    is_new: bool


def to_outbound(reply: Reply) -> Outbound:
    """A dialogue reply as a channel message."""
    return Outbound(reply.text, tuple(QuickReply(o.label, o.value) for o in reply.options))


def from_view(m: MessageView) -> Outbound:
    """A stored outbound message as a channel message."""
    return Outbound(m.text, tuple(QuickReply(o["label"], o["value"]) for o in m.options))


def summary_of(slots: Mapping[str, Any]) -> str:
    """A lead's summary: the slots the script collected, one per line."""
    skip = {"lead_code"}
    return "\n".join(f"{k}: {v}" for k, v in slots.items() if k not in skip and v)


class Pipeline:
    """The per-message core, shared by every channel."""

    def __init__(
        self,
        store: Store,
        dialogs: Dialogs,
        assess: Assess,
        desk: Desk,
        *,
        default_script: str = "intake",
        default_lang: str = "zh-CN",
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.dialogs = dialogs
        self.assess = assess
        self.desk = desk
        self.default_script = default_script
        self.default_lang = default_lang
        self.metrics = metrics or Metrics()
        self._opening = KeyedLocks()

    async def start_conversation(
        self,
        channel: str,
        address: str,
        *,
        script_id: str | None = None,
        lang: str | None = None,
        token: str | None = None,
        conversation_id: str | None = None,
    ) -> tuple[ConversationView, list[Outbound]]:
        """Open a conversation and store the script's greeting."""
        conv, step = await self._open(
            channel, address, script_id, lang, token=token, conversation_id=conversation_id
        )
        replies = [to_outbound(r) for r in step.replies]
        async with self.store.turn(conv.id) as turn:
            for r in replies:
                await turn.add_outbound(r.text, _opts(r))
            conv = await turn.update(flags={**conv.flags, "greeted": True})
        return conv, replies

    async def _open(
        self,
        channel: str,
        address: str,
        script_id: str | None = None,
        lang: str | None = None,
        **extra: Any,
    ) -> tuple[ConversationView, Step]:
        """A new conversation at the start of its script (greeting not yet stored)."""
        step = self.dialogs.start(script_id or self.default_script, lang or self.default_lang)
        conv = await self.store.create_conversation(
            channel=channel,
            address=address,
            script_id=step.state.script_id,
            script_lang=step.state.lang,
            script_version=step.state.version,
            state=step.state.state,
            slots=step.state.slots,
            **extra,
        )
        return conv, step

    async def _find_or_open(self, channel: str, address: str) -> ConversationView:
        """The open conversation of (channel, address), opened now if there is none."""
        # Two first messages of one child arriving together must open one conversation. The
        # lock spares this process a losing insert; across processes the database's unique
        # index over open conversations decides, and the loser takes the winner's.
        async with self._opening.hold(f"{channel}\x00{address}"):
            conv = await self.store.find_open_conversation(channel, address)
            if conv is not None:
                return conv
            try:
                conv, _step = await self._open(channel, address)
            except ConversationAlreadyOpen:
                conv = await self.store.find_open_conversation(channel, address)
                if conv is None:  # closed again meanwhile: unstored, so the channel retries
                    raise
            return conv

    async def accept(
        self,
        inbound: Inbound,
        *,
        conversation_id: str | None = None,
        conversation: ConversationView | None = None,
    ) -> Accepted:
        """Store the message before anything else (idempotent on channel + message id)."""
        if conversation is not None:
            conv, conversation_id = conversation, conversation.id
        elif conversation_id is None:
            conv = await self._find_or_open(inbound.channel, inbound.address)
            conversation_id = conv.id
        else:
            found = await self.store.get_conversation(conversation_id)
            if found is None:
                raise LookupError(conversation_id)
            conv = found
        if conv.mode == "closed":
            raise ConversationClosed(conversation_id)
        msg, is_new = await self.store.store_inbound(
            conversation_id,
            channel=inbound.channel,
            message_id=inbound.message_id,
            text=inbound.text,
            kind=inbound.kind,
            received_at=inbound.received_at,
        )
        return Accepted(msg.conversation_id, msg, is_new)

    async def handle(
        self, inbound: Inbound, *, conversation_id: str | None = None
    ) -> list[Outbound]:
        """accept() then process(): the replies to this message."""
        return await self.process(await self.accept(inbound, conversation_id=conversation_id))

    async def process(self, accepted: Accepted) -> list[Outbound]:
        """Run the turn for a stored message; a retry gets the replies already stored."""
        replies, _mode, _fresh = await self._process(accepted)
        return replies

    async def respond(self, accepted: Accepted) -> tuple[list[Outbound], str]:
        """process(), plus who answers the child from now on (bot, waiting, human, closed)."""
        replies, mode, _fresh = await self._process(accepted)
        return replies, mode

    async def _process(self, accepted: Accepted) -> tuple[list[Outbound], str, bool]:
        """Replies, the mode after the turn, and whether this call produced the replies."""
        started = time.perf_counter()
        try:
            result = await self._run_turn(accepted)
        except Exception:
            self.metrics.failures.inc()
            raise
        if result[2]:
            self.metrics.messages.labels(kind=accepted.message.kind).inc()
            self.metrics.turn_seconds.observe(time.perf_counter() - started)
        return result

    async def _run_turn(self, accepted: Accepted) -> tuple[list[Outbound], str, bool]:
        notes: list[str] = []
        relay: MessageView | None = None
        async with self.store.turn(accepted.conversation_id) as turn:
            msg = await turn.message(accepted.message.id)
            if msg.processed_at is not None:
                stored = [from_view(m) for m in await turn.replies_to(msg.id)]
                return stored, turn.conversation.mode, False
            out, notes, relay_msg = await self._turn(turn, msg)
            if relay_msg:  # the volunteer sees it with its assessment, to highlight the hits
                relay = replace(msg, risk_level=turn.assessed_level, assessment=turn.assessed)
            turn.add_replies([(o.text, _opts(o)) for o in out], in_reply_to=msg.id)
            await turn.mark_processed(msg.id)
            conv = await turn.update(last_inbound_at=msg.created_at)
        # After commit: consoles learn about it only once it is durable. The turn is stored and
        # marked processed, so its replies must go out even if telling consoles fails: a lost
        # offer is made again by the handoff clock (SLA escalation, offers to who comes online).
        try:
            if relay is not None:
                await self.desk.relay_to_volunteer(conv, relay)
            await self.desk.notify(conv, ["message", *notes])
        except Exception:
            log.exception("turn %s stored; consoles not told", msg.id)
        return out, conv.mode, True

    async def _turn(self, turn: Turn, msg: MessageView) -> tuple[list[Outbound], list[str], bool]:
        """The body of one turn: replies, notes for consoles, and whether to relay the message."""
        history = await turn.history(before_id=msg.id)
        text = msg.text if msg.kind == "text" else ""
        assessment = self.assess(text, history)
        before = Level(turn.conversation.risk_level)
        level = max(before, assessment.level)
        notes = await self._record_assessment(turn, msg, assessment, before, level)
        conv = turn.conversation
        lang = conv.script_lang

        out: list[Outbound] = []
        newly_imminent = level == Level.IMMINENT and before < Level.IMMINENT
        if conv.mode == "human":
            if newly_imminent:
                out.append(Outbound(notice("emergency", lang)))
            return out, notes, True
        if conv.mode == "waiting":
            if newly_imminent:
                out.append(Outbound(notice("emergency", lang)))
            position = await turn.waiting_ahead() + 1
            out.append(Outbound(notice("waiting_hold", lang, position=position)))
            return out, notes, False

        # Bot mode: urgent risk goes to a human before anything the script would say. Once a
        # volunteer has seen the chat and handed it back, only new evidence re-queues it: a
        # higher level, or this message alone being urgent (so calm words after a release are
        # answered by the script, and a fresh threat is never missed).
        alone = assessment if not history else self.assess(text, ())
        if level >= Level.URGENT and (
            not conv.flags.get("human_seen") or level > before or alone.level >= Level.URGENT
        ):
            if newly_imminent or alone.level == Level.IMMINENT:
                out.append(Outbound(notice("emergency", lang)))
            out += await self._request_human(turn, reason="detector", level=level)
            notes.append("queued")
            return out, notes, False

        quoted = LEAD_CODE_IN_TEXT.search(text.upper())
        if quoted and not conv.flags.get("returning_lead"):
            lead = await turn.lead_by_code(quoted.group(0))
            if lead is not None:  # a child coming back to their case: a person picks it up
                # (also as the first message on a push channel: the code says more than a greeting)
                flags = {**conv.flags, "returning_lead": lead.code, "greeted": True}
                await turn.update(flags=flags)
                await turn.add_event("lead.returned", {"code": lead.code})
                out = [Outbound(notice("lead_found", lang, code=lead.code))]
                out += await self._request_human(turn, reason="returning_lead", level=level)
                return out, [*notes, "queued"], False

        if not conv.flags.get("greeted"):
            # A first message on a push channel (WeChat, Telegram) opens with the greeting.
            greet = self.dialogs.start(conv.script_id, conv.script_lang)
            await turn.update(flags={**conv.flags, "greeted": True})
            return [to_outbound(r) for r in greet.replies], notes, False

        state = DialogState(
            conv.script_id, conv.script_lang, conv.script_version, conv.state, conv.slots
        )
        step = self.dialogs.step(state, text, alone.level)  # the script reacts to new words only
        out += [to_outbound(r) for r in step.replies]
        await turn.update(
            state=step.state.state,
            slots=dict(step.state.slots),
            script_version=step.state.version,
        )
        notes += await self._carry_out(turn, step, out, level)
        if not out:  # never leave a child in silence
            out.append(Outbound(notice("fallback", lang)))
        return out, notes, False

    async def _record_assessment(
        self, turn: Turn, msg: MessageView, assessment: Assessment, before: Level, level: Level
    ) -> list[str]:
        """Store the verdict; the conversation keeps the highest level and every category."""
        self.metrics.risk.labels(level=assessment.level.label).inc()
        await turn.set_assessment(
            msg.id, int(assessment.level), assessment.categories, assessment.to_dict()
        )
        conv = turn.conversation
        changes: dict[str, Any] = {}
        if level > before:
            changes["risk_level"] = int(level)
            await turn.add_event(
                "risk.raised",
                {
                    "from": before.label,
                    "to": level.label,
                    "categories": list(assessment.categories),
                },
            )
        if set(assessment.categories) - set(conv.categories):
            changes["categories"] = sorted(set(conv.categories) | set(assessment.categories))
        if changes:
            await turn.update(**changes)
        return ["risk"] if level > before else []

    async def _carry_out(
        self, turn: Turn, step: Step, out: list[Outbound], level: Level
    ) -> list[str]:
        """Run the script's actions (after the transition, as the conventions ask)."""
        lang = turn.conversation.script_lang
        notes: list[str] = []
        for action in step.actions:
            if action.name == "emergency":
                if not any("110" in o.text for o in out):
                    out.insert(0, Outbound(notice("emergency", lang)))
            elif action.name == "request_human":
                out += await self._request_human(turn, reason="child_asked", level=level)
                notes.append("queued")
            elif action.name == "create_lead":
                slots = turn.conversation.slots
                code = str(action.args.get("lead_code") or slots.get("lead_code", ""))
                if code:
                    await turn.upsert_lead(
                        code,
                        risk_level=int(level),
                        summary=summary_of(slots),
                        district=lead_district(slots),
                    )
                    await turn.add_event("lead.created", {"code": code})
            elif action.name == "end":
                if turn.conversation.mode == "bot":
                    await turn.update(mode="closed", closed_at=utcnow())
                    await turn.add_event("conversation.closed", {"by": "script"})
        return notes

    async def _request_human(self, turn: Turn, *, reason: str, level: Level) -> list[Outbound]:
        """Queue the conversation for a volunteer and tell the child what happens next."""
        text = await self.desk.enqueue(turn, reason=reason, level=int(level))
        if text is None:  # already waiting or with a person
            return []
        self.metrics.handoffs.inc()
        return [Outbound(text)]

    async def recover(self, deliver: Deliver, older_than: timedelta = timedelta(0)) -> int:
        """Answer messages that were stored but never processed (after a crash); returns count."""
        count = 0
        for msg in await self.store.unprocessed_inbound(older_than):
            try:
                replies, _mode, fresh = await self._process(
                    Accepted(msg.conversation_id, msg, True)
                )
                if not fresh:  # a live turn in another process answered it meanwhile
                    continue
                conv = await self.store.get_conversation(msg.conversation_id)
                if conv is not None and replies:
                    await deliver(conv, replies)
                count += 1
            except Exception:
                log.exception("could not recover message %s", msg.id)
                await self._fallback_once(msg, deliver)
        return count

    async def _fallback_once(self, msg: MessageView, deliver: Deliver) -> None:
        """A turn recovery cannot run still gets the fallback (110 / 120 / 12355), once; the
        sweep keeps retrying the turn itself."""
        try:
            if not await self.store.kv_add(f"recover:fallback:{msg.id}", "1", timedelta(days=2)):
                return
            conv = await self.store.get_conversation(msg.conversation_id)
            if conv is not None:
                await deliver(conv, [Outbound(notice("fallback", conv.script_lang))])
        except Exception:
            log.exception("no fallback for message %s either", msg.id)


def _opts(o: Outbound) -> list[dict[str, str]]:
    return [{"label": q.label, "value": q.value} for q in o.options]
