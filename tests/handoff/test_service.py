"""The handoff service on every backend: offers, first-to-accept, relay, SLA, reassurance."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from handoff.bus import InProcessBus
from handoff.service import (
    SUPERVISORS_TOPIC,
    HandoffConflict,
    HandoffService,
    NotHolder,
    Policy,
    volunteer_topic,
)
from storage.crypto import Vault
from storage.handoff_repo import InvalidTransition
from storage.models import utcnow
from storage.store import Store
from storage.views import ConversationView
from tests.conftest import new_conversation


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Desk:
    """The service plus what it delivered to children and published to consoles."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.bus = InProcessBus()
        self.delivered: list[tuple[str, str]] = []
        self.store = store
        self.clock = clock
        self.service = HandoffService(
            store,
            self.bus,
            self._deliver,
            Policy(
                sla_urgent=timedelta(seconds=60),
                sla_imminent=timedelta(seconds=30),
                reassure_every=timedelta(seconds=90),
                presence_ttl=timedelta(seconds=45),
                capacity=2,
            ),
            clock=clock,
        )

    async def _deliver(self, conv: ConversationView, texts) -> None:
        self.delivered += [(conv.id, t) for t in texts]

    async def conversation(self, address: str = "child") -> ConversationView:
        """A new web conversation, still with the bot."""
        view: ConversationView = await new_conversation(
            self.store, address, channel="web", state="safe"
        )
        return view

    async def waiting(self, level: int = 2, address: str = "child") -> ConversationView:
        conv = await self.conversation(address)
        async with self.store.turn(conv.id) as turn:
            conv = await turn.update(mode="waiting", risk_level=level, waiting_since=self.clock())
        return conv


@pytest.fixture
async def desk(database_url: str):
    store = Store.open(database_url, Vault("handoff-test-secret-012345"))
    d = Desk(store, Clock())
    await d.bus.start()
    yield d
    await d.bus.close()
    await store.close()


async def drain(sub, n: int, timeout: float = 2.0) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        event = await asyncio.wait_for(sub.__anext__(), timeout)
        out.append(event.data)
    return out


async def test_nobody_online_means_nobody_available(desk: Desk) -> None:
    assert await desk.service.volunteers_available() == 0
    await desk.service.heartbeat(1)
    assert await desk.service.volunteers_available() == 1
    await desk.service.set_status(1, "away")
    assert await desk.service.volunteers_available() == 0
    await desk.service.set_status(1, "available")
    await desk.service.disconnect(1)
    assert await desk.service.volunteers_available() == 0


async def test_a_silent_console_goes_offline(desk: Desk) -> None:
    await desk.service.heartbeat(1)
    desk.service.policy = Policy(presence_ttl=timedelta(seconds=0))
    await asyncio.sleep(0.01)
    assert await desk.service.volunteers_available() == 0


async def test_a_new_handoff_is_offered_to_volunteers_with_room(desk: Desk) -> None:
    await desk.service.heartbeat(1)
    await desk.service.heartbeat(2)
    await desk.service.set_status(2, "away")
    async with (
        desk.bus.subscribe(volunteer_topic(1)) as one,
        desk.bus.subscribe(volunteer_topic(2)) as two,
    ):
        conv = await desk.waiting()
        await desk.service.notify(conv, ["queued"])
        [offer] = await drain(one, 1)
        assert offer["type"] == "handoff.offered"
        assert offer["conversation"]["id"] == conv.id
        assert offer["conversation"]["risk_level"] == "urgent"
        with pytest.raises(TimeoutError):
            await drain(two, 1, timeout=0.2)  # away: not offered


async def test_coming_online_offers_what_is_waiting(desk: Desk) -> None:
    conv = await desk.waiting()
    async with desk.bus.subscribe(volunteer_topic(7)) as sub:
        await desk.service.connect(7)
        [offer] = await drain(sub, 1)
    assert offer["conversation"]["id"] == conv.id


async def test_first_to_accept_wins_exactly_once(desk: Desk) -> None:
    conv = await desk.waiting()
    results = await asyncio.gather(
        *[desk.service.accept(conv.id, uid, f"v{uid}") for uid in (1, 2, 3, 4)],
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, ConversationView)]
    losers = [r for r in results if isinstance(r, HandoffConflict)]
    assert len(winners) == 1 and len(losers) == 3
    after = await desk.store.get_conversation(conv.id)
    assert after is not None and after.mode == "human"
    assert after.assigned_to == winners[0].assigned_to
    assert any("一位老师来了" in t for _, t in desk.delivered)  # the child is told


async def test_relay_both_ways_and_only_the_holder_may_speak(desk: Desk) -> None:
    conv = await desk.waiting()
    await desk.service.accept(conv.id, 1, "alice")
    async with (
        desk.bus.subscribe(volunteer_topic(1)) as mine,
        desk.bus.subscribe(SUPERVISORS_TOPIC) as sup,
    ):
        msg = await desk.service.send(conv.id, 1, "我在这里，你现在安全吗？")
        assert msg.sender == "volunteer:1"
        assert (conv.id, "我在这里，你现在安全吗？") in desk.delivered
        [echo] = await drain(mine, 1)
        assert echo["message"]["text"] == "我在这里，你现在安全吗？"
        [seen] = await drain(sup, 1)
        assert seen["type"] == "message"
        # The child's message reaches the holder live.
        child, _ = await desk.store.store_inbound(
            conv.id, channel="web", message_id="c1", text="我在厕所"
        )
        held = await desk.store.get_conversation(conv.id)
        assert held is not None
        await desk.service.relay_to_volunteer(held, child)
        [relayed] = await drain(mine, 1)
        assert relayed["message"]["text"] == "我在厕所"
    with pytest.raises(NotHolder):
        await desk.service.send(conv.id, 2, "I am not the holder")


async def test_transfer_release_and_close(desk: Desk) -> None:
    conv = await desk.waiting()
    await desk.service.accept(conv.id, 1, "alice")
    moved = await desk.service.transfer(conv.id, 1, "alice", 2)
    assert moved.assigned_to == 2
    with pytest.raises(NotHolder):
        await desk.service.release(conv.id, 1, "alice")
    back = await desk.service.release(conv.id, 2, "bob")
    assert (back.mode, back.assigned_to) == ("bot", None)
    assert await desk.service.repo.has_held(1, conv.id)
    assert await desk.service.repo.has_held(2, conv.id)
    assert not await desk.service.repo.has_held(3, conv.id)

    await desk.service.request(conv.id, by="sup")
    await desk.service.accept(conv.id, 2, "bob")
    lead = await desk.service.close(
        conv.id, 2, "bob", category="criminal", summary="父亲醉酒后殴打，孩子躲在厕所"
    )
    assert lead.category == "criminal" and lead.state == "accepted"
    closed = await desk.store.get_conversation(conv.id)
    assert closed is not None and closed.mode == "closed"
    assert any(lead.code in t for _, t in desk.delivered)  # the child keeps the code
    with pytest.raises(ValueError):
        await desk.service.close(conv.id, 2, "bob", category="bogus", summary="x")


async def test_queue_order_is_risk_then_waiting_time(desk: Desk) -> None:
    a = await desk.waiting(2, "a")
    desk.clock.advance(1)
    b = await desk.waiting(3, "b")
    desk.clock.advance(1)
    c = await desk.waiting(2, "c")
    assert [x["id"] for x in await desk.service.queue()] == [b.id, a.id, c.id]


async def test_an_urgent_handoff_not_accepted_in_time_is_escalated_once(desk: Desk) -> None:
    await desk.service.heartbeat(1)
    await desk.service.heartbeat(2)
    await desk.service.set_status(2, "away")
    conv = await desk.waiting(level=2)
    async with (
        desk.bus.subscribe(volunteer_topic(2)) as away,
        desk.bus.subscribe(SUPERVISORS_TOPIC) as sup,
    ):
        desk.clock.advance(59)
        await desk.service.tick()
        after = await desk.store.get_conversation(conv.id)
        assert after is not None and not after.flags.get("escalated")
        desk.clock.advance(2)
        await desk.service.tick()
        await desk.service.tick()  # a second tick (or process) does not escalate again
        [flag] = await drain(sup, 1)
        assert flag["type"] == "handoff.escalated"
        [reoffer] = await drain(away, 1)  # re-offered even to those who were away
        assert reoffer["escalated"] is True
        with pytest.raises(TimeoutError):
            await drain(sup, 1, timeout=0.2)
    after = await desk.store.get_conversation(conv.id)
    assert after is not None and after.flags.get("escalated") is True


async def test_a_waiting_child_now_in_danger_rings_everyone_even_after_escalation(
    desk: Desk,
) -> None:
    await desk.service.heartbeat(1)
    conv = await desk.waiting(level=2)
    desk.clock.advance(61)
    await desk.service.tick()  # escalated once at the urgent SLA
    async with (
        desk.bus.subscribe(volunteer_topic(1)) as vol,
        desk.bus.subscribe(SUPERVISORS_TOPIC) as sup,
    ):
        async with desk.store.turn(conv.id) as turn:
            conv = await turn.update(risk_level=3)  # the child's next words: danger now
        await desk.service.notify(conv, ["message", "risk"])
        [offer] = await drain(vol, 1)
        assert offer["type"] == "handoff.offered" and offer["escalated"] is True
        assert offer["conversation"]["risk_level"] == "imminent"
        [flag] = await drain(sup, 1)
        assert flag["type"] == "handoff.escalated"


async def test_one_chat_that_fails_does_not_hold_back_another_childs_escalation(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = await desk.waiting(level=3, address="broken")
    fine = await desk.waiting(level=3, address="fine")
    real = desk.service._escalate

    async def escalate(conversation_id: str) -> None:
        if conversation_id == broken.id:
            raise RuntimeError("row cannot be decrypted")
        await real(conversation_id)

    monkeypatch.setattr(desk.service, "_escalate", escalate)
    desk.clock.advance(91)  # past the imminent SLA and the first reminder
    await desk.service.tick()
    after = await desk.store.get_conversation(fine.id)
    assert after is not None and after.flags.get("escalated") is True
    reassured = {cid for cid, _t in desk.delivered}
    assert {broken.id, fine.id} <= reassured  # reminders still go out to both


async def test_imminent_escalates_after_thirty_seconds(desk: Desk) -> None:
    conv = await desk.waiting(level=3)
    desk.clock.advance(31)
    await desk.service.tick()
    after = await desk.store.get_conversation(conv.id)
    assert after is not None and after.flags.get("escalated") is True
    events = [e["type"] for e in await desk.store.events(conv.id)]
    assert "handoff.escalated" in events


async def test_a_waiting_child_is_reassured_at_intervals_never_twice(desk: Desk) -> None:
    conv = await desk.waiting()
    desk.clock.advance(89)
    await desk.service.tick()
    assert desk.delivered == []
    desk.clock.advance(2)
    await desk.service.tick()
    await desk.service.tick()
    reassured = [t for cid, t in desk.delivered if cid == conv.id]
    assert len(reassured) == 1 and "110" in reassured[0]
    desk.clock.advance(90)
    await desk.service.tick()
    assert len([t for cid, t in desk.delivered if cid == conv.id]) == 2
    # Stored too: the transcript shows what the child was told.
    outs = [m.text for m in await desk.store.transcript(conv.id) if m.direction == "out"]
    assert outs == [t for cid, t in desk.delivered if cid == conv.id]


async def test_a_lead_moves_through_the_work_order_cycle(desk: Desk) -> None:
    conv = await desk.waiting()
    await desk.service.accept(conv.id, 1, "alice")
    lead = await desk.service.close(conv.id, 1, "alice", category="civil", summary="s")
    repo = desk.service.repo
    for state in ("dispatched", "in_hand", "replied", "closed", "followed_up", "evaluated"):
        lead = await repo.set_lead_state(lead.id, state, user_id=1, username="alice", note=state)
    assert lead.state == "evaluated"
    with pytest.raises(InvalidTransition):
        await repo.set_lead_state(lead.id, "accepted", user_id=1, username="alice", note=None)
    history = await repo.lead_history(lead.id)
    assert [h["to"] for h in history][:2] == ["dispatched", "in_hand"]
    assert all(h["username"] == "alice" and h["at"] for h in history)


async def test_a_chat_whose_holder_vanished_goes_back_to_the_queue(desk: Desk) -> None:
    await desk.service.heartbeat(1)
    conv = await desk.waiting()
    await desk.service.accept(conv.id, 1, "alice")
    desk.clock.advance(600)
    await desk.service.tick()  # alice's console is alive: she keeps the chat however long
    held = await desk.store.get_conversation(conv.id)
    assert held is not None and held.mode == "human"

    await desk.service.disconnect(1)  # her laptop closed
    desk.clock.advance(1)
    async with desk.bus.subscribe(volunteer_topic(2)) as bob:
        await desk.service.heartbeat(2)
        await desk.service.tick()
        offers = await drain(bob, 1)
    after = await desk.store.get_conversation(conv.id)
    assert after is not None and (after.mode, after.assigned_to) == ("waiting", None)
    assert offers[0]["conversation"]["id"] == conv.id  # offered to someone who is there
    assert any("断线" in t for cid, t in desk.delivered if cid == conv.id)  # the child is told
    await desk.service.tick()
    assert sum("断线" in t for cid, t in desk.delivered if cid == conv.id) == 1


async def test_a_turn_counts_volunteers_with_room_on_its_own_connection(desk: Desk) -> None:
    conv = await desk.waiting()
    await desk.service.heartbeat(1)
    await desk.service.heartbeat(2)
    await desk.service.set_status(2, "away")
    async with desk.store.turn(conv.id) as turn:
        assert await turn.volunteers_with_room(desk.service.policy.presence_ttl) == 1
    await desk.service.set_status(2, "available")
    async with desk.store.turn(conv.id) as turn:
        await turn.update(mode="human", assigned_to=1)
    other = await desk.waiting(address="c")  # a second chat held by 1 fills their capacity of 2
    async with desk.store.turn(other.id) as turn:
        await turn.update(mode="human", assigned_to=1)
    async with desk.store.turn(conv.id) as turn:
        assert await turn.volunteers_with_room(desk.service.policy.presence_ttl) == 1  # only 2
    assert await desk.service.volunteers_available() == 1


async def test_many_urgent_children_at_once_do_not_exhaust_a_small_pool(
    database_url: str,
) -> None:
    """Each enqueue runs inside a turn that holds a connection; before, it asked the pool for a
    second one to count volunteers, and a pool of 2 with 6 urgent turns waited forever."""
    store = Store.open(database_url, Vault("handoff-test-secret-012345"), pool_size=1)
    desk = Desk(store, Clock())
    try:
        await desk.service.heartbeat(1)
        convs = [await desk.conversation(f"k{i}") for i in range(6)]

        async def urgent(conv_id: str) -> str | None:
            async with store.turn(conv_id) as turn:
                return await desk.service.enqueue(turn, reason="detector", level=2)

        texts = await asyncio.wait_for(asyncio.gather(*(urgent(c.id) for c in convs)), timeout=20)
        assert all(t for t in texts)  # every child is told a person is coming
    finally:
        await store.close()


async def test_a_volunteers_first_heartbeats_racing_do_not_fail(desk: Desk) -> None:
    # two tabs of one console open at once: both find no presence row and both insert
    await asyncio.gather(*(desk.service.heartbeat(5) for _ in range(8)))
    assert await desk.service.volunteers_available() == 1
