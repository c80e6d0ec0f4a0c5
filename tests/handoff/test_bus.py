"""Contract tests of the event bus, run against every backend (one subclass per backend)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from handoff.bus import (
    RESYNC_TOPIC,
    BusClosedError,
    Event,
    EventBus,
    InProcessBus,
    Subscription,
    create_bus,
    topic_matches,
)
from handoff.bus_redis import RedisBus

# Guards against a hang only; no test asserts on speed.
WAIT = 5.0

BusFactory = Callable[..., EventBus]


async def next_event(sub: Subscription) -> Event:
    """The next event of a subscription, failing the test instead of hanging."""
    return await asyncio.wait_for(anext(sub), WAIT)


async def drain(sub: Subscription, count: int) -> list[Event]:
    """The next ``count`` events of a subscription."""
    return [await next_event(sub) for _ in range(count)]


class BusContract:
    """Behaviour every EventBus backend must have; subclasses provide ``make_bus``."""

    @pytest.fixture
    def make_bus(self) -> BusFactory:
        raise NotImplementedError

    @pytest.fixture
    async def bus(self, make_bus: BusFactory) -> AsyncIterator[EventBus]:
        bus = make_bus()
        await bus.start()
        yield bus
        await bus.close()

    async def test_subscriber_receives_published_event(self, bus: EventBus) -> None:
        payload = {"text": "我想找人说说话", "risk": "urgent", "hits": [{"rule": "r1"}]}
        async with bus.subscribe("conversation.42") as sub:
            await bus.publish("conversation.42", payload)
            assert await next_event(sub) == Event("conversation.42", payload)

    async def test_topics_are_isolated(self, bus: EventBus) -> None:
        async with bus.subscribe("conversation.1") as sub:
            await bus.publish("conversation.2", {"n": 1})
            await bus.publish("console", {"n": 2})
            await bus.publish("conversation.1", {"n": 3})
            assert await next_event(sub) == Event("conversation.1", {"n": 3})

    async def test_events_published_before_subscribing_are_not_delivered(
        self, bus: EventBus
    ) -> None:
        await bus.publish("console", {"n": 1})
        async with bus.subscribe("console") as sub:
            await bus.publish("console", {"n": 2})
            assert (await next_event(sub)).data == {"n": 2}

    async def test_pattern_subscription_matches_by_wildcard(self, bus: EventBus) -> None:
        async with bus.subscribe("conversation.*") as sub:
            await bus.publish("conversation.7", {"n": 1})
            await bus.publish("console", {"n": 2})
            await bus.publish("volunteer.conversation.9", {"n": 3})
            await bus.publish("conversation.a.b", {"n": 4})
            got = await drain(sub, 2)
            assert [(e.topic, e.data["n"]) for e in got] == [
                ("conversation.7", 1),
                ("conversation.a.b", 4),
            ]

    async def test_glob_characters_other_than_star_are_literal(self, bus: EventBus) -> None:
        async with bus.subscribe("a?b.*") as sub:
            await bus.publish("axb.1", {"n": 1})
            await bus.publish("a?b.2", {"n": 2})
            assert await next_event(sub) == Event("a?b.2", {"n": 2})

    async def test_overlapping_topics_deliver_each_event_once(self, bus: EventBus) -> None:
        async with bus.subscribe("conversation.1", "conversation.*", "*.1") as sub:
            await bus.publish("conversation.1", {"n": 1})
            await bus.publish("conversation.1", {"n": 2})
            await bus.publish("console.1", {"n": 3})
            await bus.publish("conversation.2", {"n": 4})
            got = await drain(sub, 4)
            assert [e.data["n"] for e in got] == [1, 2, 3, 4]

    async def test_order_is_kept_per_topic(self, bus: EventBus) -> None:
        async with bus.subscribe("conversation.5") as sub:
            for n in range(300):
                await bus.publish("conversation.5", {"n": n})
            got = await drain(sub, 300)
            assert [e.data["n"] for e in got] == list(range(300))

    async def test_every_subscriber_gets_every_event(self, bus: EventBus) -> None:
        async with (
            bus.subscribe("console") as first,
            bus.subscribe("console") as second,
            bus.subscribe("*") as everything,
        ):
            for n in range(3):
                await bus.publish("console", {"offer": n})
            for sub in (first, second, everything):
                assert [e.data["offer"] for e in await drain(sub, 3)] == [0, 1, 2]

    async def test_each_subscriber_gets_its_own_copy(self, bus: EventBus) -> None:
        async with bus.subscribe("console") as first, bus.subscribe("console") as second:
            await bus.publish("console", {"queue": [1, 2]})
            (await next_event(first)).data["queue"].append(3)
            assert (await next_event(second)).data == {"queue": [1, 2]}

    async def test_leaving_the_context_unsubscribes(self, bus: EventBus) -> None:
        async with bus.subscribe("volunteer.3") as staying:
            async with bus.subscribe("volunteer.3") as leaving:
                await bus.publish("volunteer.3", {"n": 1})
                assert (await next_event(leaving)).data == {"n": 1}
            await bus.publish("volunteer.3", {"n": 2})
            assert [e.data["n"] for e in await drain(staying, 2)] == [1, 2]
            # The finished subscription got nothing more and ends at once.
            with pytest.raises(StopAsyncIteration):
                await next_event(leaving)
            with pytest.raises(RuntimeError):
                await leaving.__aenter__()

    async def test_resubscribing_after_leaving_works(self, bus: EventBus) -> None:
        async with bus.subscribe("console") as sub:
            pass
        async with bus.subscribe("console") as sub:
            await bus.publish("console", {"n": 1})
            assert (await next_event(sub)).data == {"n": 1}

    async def test_overflow_drops_oldest_and_announces_resync(self, bus: EventBus) -> None:
        async with (
            bus.subscribe("console", maxsize=3) as slow,
            bus.subscribe("console") as witness,
        ):
            for n in range(10):
                await bus.publish("console", {"n": n})
            # Once the unbounded witness has all ten, the slow one has been offered all ten too.
            assert [e.data["n"] for e in await drain(witness, 10)] == list(range(10))
            got = await drain(slow, 4)
            assert got[0] == Event(RESYNC_TOPIC, {"reason": "overflow", "dropped": 7})
            assert [e.data["n"] for e in got[1:]] == [7, 8, 9]
            assert slow.dropped == 7
            await bus.publish("console", {"n": 10})
            assert (await next_event(slow)).data == {"n": 10}

    async def test_close_ends_subscriptions_and_refuses_publishing(
        self, make_bus: BusFactory
    ) -> None:
        bus = make_bus()
        await bus.start()
        received: list[int] = []

        async def listen(sub: Subscription) -> None:
            async for event in sub:
                received.append(event.data["n"])

        async with bus.subscribe("console") as sub:
            task = asyncio.create_task(listen(sub))
            await bus.publish("console", {"n": 1})
            await bus.close()
            await asyncio.wait_for(task, WAIT)  # the reader loop ended on its own
        assert received in ([], [1])  # nothing invented; the one event may or may not be in
        with pytest.raises(BusClosedError):
            await bus.publish("console", {"n": 2})
        with pytest.raises(BusClosedError):
            async with bus.subscribe("console"):
                pass
        await bus.close()  # closing twice is harmless

    async def test_unusable_before_start(self, make_bus: BusFactory) -> None:
        bus = make_bus()
        with pytest.raises(BusClosedError):
            await bus.publish("console", {})
        await bus.close()

    @pytest.mark.parametrize("topic", ["", "conversation.*", "bus.resync", "bus.anything"])
    async def test_publish_rejects_bad_topics(self, bus: EventBus, topic: str) -> None:
        with pytest.raises(ValueError):
            await bus.publish(topic, {})

    @pytest.mark.parametrize("data", [{"s": {1, 2}}, {"obj": object()}, ["not", "a", "dict"]])
    async def test_publish_rejects_data_that_is_not_json(self, bus: EventBus, data: Any) -> None:
        with pytest.raises(TypeError):
            await bus.publish("console", data)

    def test_subscribe_needs_a_topic(self, bus: EventBus) -> None:
        with pytest.raises(ValueError):
            bus.subscribe()
        with pytest.raises(ValueError):
            bus.subscribe("")


class TestInProcessBus(BusContract):
    """The default in-process bus."""

    @pytest.fixture
    def make_bus(self) -> BusFactory:
        return lambda: InProcessBus()


@pytest.mark.redis
class TestRedisBus(BusContract):
    """The Redis pub/sub bus, against the Redis named by QINGTING_TEST_REDIS_URL."""

    @pytest.fixture
    def make_bus(self, redis_url: str, bus_prefix: str) -> BusFactory:
        return lambda: RedisBus(redis_url, prefix=bus_prefix)


def test_create_bus_picks_the_backend_from_settings() -> None:
    assert isinstance(create_bus(None), InProcessBus)
    assert isinstance(create_bus(""), InProcessBus)
    redis_bus = create_bus("redis://127.0.0.1:6379/0", prefix="p:")
    assert isinstance(redis_bus, RedisBus)
    assert redis_bus.prefix == "p:"
    assert isinstance(redis_bus, EventBus)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("conversation.*", "conversation.1", True),
        ("conversation.*", "conversation.", True),
        ("conversation.*", "conversation", False),
        ("*.1", "volunteer.1", True),
        ("conversation.1", "conversation.10", False),
        ("a?b", "axb", False),
        ("a[b]", "a[b]", True),
    ],
)
def test_topic_matches(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected
