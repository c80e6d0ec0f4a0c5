"""Redis-only behaviour of the event bus: across processes, one subscription per topic, and
recovery after the connection is killed."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from handoff.bus import RESYNC_TOPIC, Event, Subscription
from handoff.bus_redis import RedisBus

pytestmark = pytest.mark.redis

# Guards against a hang only; no test asserts on speed.
WAIT = 10.0
REPO = Path(__file__).resolve().parents[2]


async def next_event(sub: Subscription) -> Event:
    """The next event of a subscription, failing the test instead of hanging."""
    return await asyncio.wait_for(anext(sub), WAIT)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds; fail with ``what`` if it never does."""
    for _ in range(int(WAIT / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)  # state lives in Redis: nothing to wait on but polling
    pytest.fail(what)


async def probe_until_delivered(publisher: RedisBus, sub: Subscription, topic: str) -> None:
    """Publish probes to ``topic`` until ``sub`` receives one (events in a gap may be lost)."""
    async with asyncio.timeout(WAIT):
        while True:
            await publisher.publish(topic, {"probe": True})
            try:
                while True:
                    event = await asyncio.wait_for(anext(sub), 0.1)
                    if event.data.get("probe") is True:
                        return
            except TimeoutError:
                continue


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A second, independent Redis client, as an operator would use."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def make_bus(redis_url: str, bus_prefix: str) -> AsyncIterator[Callable[[], RedisBus]]:
    """Start RedisBus instances sharing one prefix (like processes of one deployment)."""
    buses: list[RedisBus] = []

    def make() -> RedisBus:
        bus = RedisBus(
            redis_url,
            prefix=bus_prefix,
            client_name=f"qt-test-{uuid.uuid4().hex[:10]}",
            backoff=(0.02, 0.2),
        )
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


async def client_ids(admin: aioredis.Redis, name: str) -> list[int]:
    """Ids of the Redis connections with this client name."""
    return [int(c["id"]) for c in await admin.client_list() if c.get("name") == name]


async def test_event_published_by_one_process_reaches_the_other(
    make_bus: Callable[[], RedisBus],
) -> None:
    process_a, process_b = make_bus(), make_bus()
    await process_a.start()
    await process_b.start()
    async with (
        process_b.subscribe("conversation.9") as conversation,
        process_b.subscribe("console") as console,
    ):
        await process_a.publish("conversation.9", {"from": "child", "text": "救救我"})
        await process_a.publish("console", {"type": "handoff.offered", "conversation": 9})
        assert await next_event(conversation) == Event(
            "conversation.9", {"from": "child", "text": "救救我"}
        )
        assert (await next_event(console)).data["type"] == "handoff.offered"


async def test_event_from_a_real_subprocess_arrives(
    make_bus: Callable[[], RedisBus], redis_url: str, bus_prefix: str
) -> None:
    bus = make_bus()
    await bus.start()
    script = (
        "import asyncio, sys\n"
        "from handoff.bus import create_bus\n"
        "async def main():\n"
        "    bus = create_bus(sys.argv[1], prefix=sys.argv[2])\n"
        "    await bus.start()\n"
        "    await bus.publish('volunteer.7', {'type': 'message', 'text': '你好'})\n"
        "    await bus.close()\n"
        "asyncio.run(main())\n"
    )
    async with bus.subscribe("volunteer.*") as sub:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, redis_url, bus_prefix, cwd=REPO
        )
        assert await asyncio.wait_for(proc.wait(), WAIT) == 0
        assert await next_event(sub) == Event("volunteer.7", {"type": "message", "text": "你好"})


async def test_other_prefixes_do_not_mix(make_bus: Callable[[], RedisBus], redis_url: str) -> None:
    ours = make_bus()
    theirs = RedisBus(redis_url, prefix=f"qt-other-{uuid.uuid4().hex}:")
    await ours.start()
    await theirs.start()
    try:
        async with ours.subscribe("*") as sub:
            await theirs.publish("console", {"n": 1})
            await ours.publish("console", {"n": 2})
            assert (await next_event(sub)).data == {"n": 2}
    finally:
        await theirs.close()


async def test_redis_is_subscribed_once_per_topic_and_released_on_exit(
    make_bus: Callable[[], RedisBus], admin: aioredis.Redis, bus_prefix: str
) -> None:
    bus = make_bus()
    await bus.start()
    channel = bus_prefix + "console"

    async def subscribers() -> int:
        return dict(await admin.pubsub_numsub(channel))[channel]

    async with bus.subscribe("console"), bus.subscribe("console"):
        assert await subscribers() == 1  # one shared connection, told once

    async def released() -> bool:
        return await subscribers() == 0

    await eventually(released, "the bus should unsubscribe from Redis when nobody listens")


async def test_subscriber_connection_recovers_after_being_killed(
    make_bus: Callable[[], RedisBus], admin: aioredis.Redis
) -> None:
    publisher, bus = make_bus(), make_bus()
    await publisher.start()
    await bus.start()
    async with bus.subscribe("conversation.1") as sub, bus.subscribe("console.*") as patterned:
        (old_id,) = await client_ids(admin, f"{bus.client_name}-sub")
        assert await admin.client_kill_filter(_id=old_id) == 1

        await probe_until_delivered(publisher, sub, "conversation.1")
        assert bus.reconnects >= 1
        assert await client_ids(admin, f"{bus.client_name}-sub") != [old_id]

        # The pattern subscription is back too, and tells its reader to resync first.
        await publisher.publish("console.3", {"n": 1})
        first = await next_event(patterned)
        assert first == Event(RESYNC_TOPIC, {"reason": "reconnected"})
        while (await next_event(patterned)).data != {"n": 1}:
            pass

        # Ordering holds again after recovery.
        for n in range(50):
            await publisher.publish("conversation.1", {"n": n})
        got: list[int] = []
        while len(got) < 50:
            event = await next_event(sub)
            if "n" in event.data:
                got.append(event.data["n"])
        assert got == list(range(50))


async def test_subscribing_while_disconnected_activates_on_reconnect(
    make_bus: Callable[[], RedisBus], admin: aioredis.Redis
) -> None:
    publisher, bus = make_bus(), make_bus()
    await publisher.start()
    await bus.start()
    (old_id,) = await client_ids(admin, f"{bus.client_name}-sub")
    await admin.client_kill_filter(_id=old_id)
    async with bus.subscribe("volunteer.5") as sub:  # may be entered during the gap
        await probe_until_delivered(publisher, sub, "volunteer.5")
        await publisher.publish("volunteer.5", {"n": 1})
        while (event := await next_event(sub)).data.get("probe"):
            pass
        assert event == Event("volunteer.5", {"n": 1})


async def test_publisher_recovers_after_its_connection_is_killed(
    make_bus: Callable[[], RedisBus], admin: aioredis.Redis
) -> None:
    publisher, bus = make_bus(), make_bus()
    await publisher.start()
    await bus.start()
    async with bus.subscribe("console") as sub:
        for client_id in await client_ids(admin, f"{publisher.client_name}-pub"):
            await admin.client_kill_filter(_id=client_id)
        await publisher.publish("console", {"n": 1})
        assert (await next_event(sub)).data == {"n": 1}
        assert publisher.lost_publishes == 0


async def test_close_releases_the_connections(
    make_bus: Callable[[], RedisBus], admin: aioredis.Redis
) -> None:
    bus = make_bus()
    await bus.start()
    async with bus.subscribe("console"):
        await bus.publish("console", {"n": 1})
    await bus.close()

    async def gone() -> bool:
        names = {c.get("name") for c in await admin.client_list()}
        return not {f"{bus.client_name}-sub", f"{bus.client_name}-pub"} & names

    await eventually(gone, "close() should close both Redis connections")


async def test_start_fails_fast_when_redis_is_unreachable() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(RedisConnectionError):
        await bus.start()
    await bus.close()


class FreezableProxy:
    """A TCP proxy to Redis that can go silent on its open connections, like a dead peer."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.frozen: list[asyncio.Event] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def freeze_open_connections(self) -> None:
        for frozen in self.frozen:
            frozen.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frozen = asyncio.Event()
        self.frozen.append(frozen)
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                if frozen.is_set():
                    continue  # swallow everything: neither side hears from the other again
                dst.write(data)
                await dst.drain()

        await asyncio.gather(
            pump(reader, up_writer), pump(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            w.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_silent_connection_is_detected_and_replaced(
    make_bus: Callable[[], RedisBus], redis_url: str, bus_prefix: str
) -> None:
    from redis.asyncio.connection import parse_url

    target = parse_url(redis_url)
    proxy = FreezableProxy(target.get("host", "127.0.0.1"), target.get("port", 6379))
    port = await proxy.start()
    bus = RedisBus(
        f"redis://127.0.0.1:{port}/{target.get('db', 0)}",
        prefix=bus_prefix,
        ping_interval=0.1,
        backoff=(0.02, 0.2),
    )
    publisher = make_bus()
    await publisher.start()
    await bus.start()
    try:
        async with bus.subscribe("console") as sub:
            await publisher.publish("console", {"n": 1})
            assert (await next_event(sub)).data == {"n": 1}
            proxy.freeze_open_connections()  # the socket stays open but nothing gets through
            await probe_until_delivered(publisher, sub, "console")
            assert bus.reconnects >= 1
    finally:
        await bus.close()
        await proxy.close()
