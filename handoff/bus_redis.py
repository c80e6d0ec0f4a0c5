"""The event bus over Redis pub/sub, so events cross processes.

One connection publishes; one subscriber connection, shared by all the subscriptions of the
process, is read by a single task that fans events out to local queues. Redis is told about a
topic once, however many local subscribers it has. If the subscriber connection drops, the
reader reconnects with back-off and re-subscribes; events published during the gap are lost
(the database is the source of truth) and each subscription receives a resync event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from handoff.bus import (
    DEFAULT_QUEUE_SIZE,
    RESYNC_TOPIC,
    BusClosedError,
    Event,
    Subscription,
    _LocalIndex,
    check_publish_topic,
    encode_event,
    topic_matches,
)

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, EOFError)
_GLOB_SPECIALS = "\\?[]*"


def _escape_glob(text: str) -> str:
    """Escape Redis glob characters so they match literally."""
    return "".join("\\" + c if c in _GLOB_SPECIALS else c for c in text)


class RedisBus:
    """Event bus over Redis pub/sub; every process sharing the URL and prefix sees each event."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "qingting:",
        queue_size: int = DEFAULT_QUEUE_SIZE,
        client_name: str | None = None,
        subscribe_timeout: float = 5.0,
        ping_interval: float = 30.0,
        backoff: tuple[float, float] = (0.05, 5.0),
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.queue_size = queue_size
        # Named connections let operators (and tests) find them in CLIENT LIST.
        self.client_name = client_name or f"qingting-bus-{uuid.uuid4().hex[:12]}"
        self.subscribe_timeout = subscribe_timeout
        self.ping_interval = ping_interval
        self.backoff = backoff
        self.reconnects = 0  # subscriber reconnections since start, for metrics and tests
        self.lost_publishes = 0  # publishes that failed because Redis was unreachable
        self._index = _LocalIndex()
        self._publisher: aioredis.Redis | None = None
        self._sub_pool: ConnectionPool | None = None
        self._conn: AbstractConnection | None = None
        # Bumped on every (re)connection; per-name counters of SUBSCRIBEs sent and confirmed on
        # the current connection let a new subscriber wait until Redis really listens for it.
        self._epoch = 0
        self._sent: dict[tuple[str, str], int] = {}
        self._confirmed: dict[tuple[str, str], int] = {}
        self._changed = asyncio.Condition()
        self._outbox: asyncio.Queue[tuple[AbstractConnection, tuple[str, ...]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._closed = False

    # -- names -------------------------------------------------------------------------------

    def _channel(self, topic: str) -> str:
        return self.prefix + topic

    def _redis_pattern(self, pattern: str) -> str:
        return _escape_glob(self.prefix) + "*".join(_escape_glob(p) for p in pattern.split("*"))

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Redis (fails fast if it is unreachable) and start the reader task."""
        if self._closed:
            raise BusClosedError("the bus is closed")
        if self._started:
            return
        # Short timeouts and a single retry: a publisher must not hang when Redis is away.
        self._publisher = aioredis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=2.0,
            socket_timeout=2.0,
            retry=Retry(NoBackoff(), 1),
            client_name=f"{self.client_name}-pub",
        )
        await self._publisher.ping()
        # No read timeout: the subscriber connection legitimately stays silent for long spells.
        self._sub_pool = ConnectionPool.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=2.0,
            socket_timeout=None,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            client_name=f"{self.client_name}-sub",
        )
        conn = await self._connect_subscriber()
        self._started = True
        self._tasks = [
            asyncio.create_task(self._read_forever(conn), name="event-bus-reader"),
            asyncio.create_task(self._write_forever(), name="event-bus-writer"),
            asyncio.create_task(self._ping_forever(), name="event-bus-pinger"),
        ]

    async def close(self) -> None:
        """Cancel the reader, end every subscription and close both connections."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._index.finish_all()
        async with self._changed:
            self._changed.notify_all()
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect()
        if self._sub_pool is not None:
            await self._sub_pool.disconnect()
        if self._publisher is not None:
            await self._publisher.aclose()

    # -- publish / subscribe -----------------------------------------------------------------

    async def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Publish to every process; if Redis is unreachable, log and drop (the DB has it)."""
        self._check_open()
        check_publish_topic(topic)
        payload = encode_event(data)
        assert self._publisher is not None
        try:
            await self._publisher.publish(self._channel(topic), payload)
        except _CONNECTION_ERRORS as exc:
            self.lost_publishes += 1
            log.warning("event bus: publish to %s lost, Redis unreachable: %s", topic, exc)

    def subscribe(self, *topics: str, maxsize: int | None = None) -> Subscription:
        """Return a subscription to topics or ``*`` patterns (enter it to start receiving)."""
        return Subscription(self, topics, maxsize or self.queue_size)

    async def _attach(self, sub: Subscription) -> None:
        """Index the subscription and wait until Redis confirms it listens for its topics."""
        self._check_open()
        new_topics, new_patterns = self._index.add(sub)
        new_keys = {("subscribe", self._channel(t)) for t in new_topics}
        new_keys |= {("psubscribe", self._redis_pattern(p)) for p in new_patterns}
        keys = [("subscribe", self._channel(t)) for t in sub.exact]
        keys += [("psubscribe", self._redis_pattern(p)) for p in sub.patterns]
        epoch, conn = self._epoch, self._conn
        # How many confirmations each name needs on this connection before we are listening.
        targets: dict[tuple[str, str], int] = {}
        for key in keys:
            if conn is not None and key in new_keys:
                self._sent[key] = self._sent.get(key, 0) + 1
                self._enqueue(conn, key[0].upper(), key[1])
            targets[key] = self._sent.get(key, 0)

        def ready() -> bool:
            if self._closed:
                return True
            same_connection = conn is not None and self._epoch == epoch
            return all(
                self._confirmed.get(key, 0) >= (seq if same_connection else 1)
                for key, seq in targets.items()
            )

        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(ready), self.subscribe_timeout)
        except TimeoutError:
            # Keep the subscription: it activates when Redis answers. Don't block the caller.
            log.warning("event bus: Redis has not confirmed subscription to %s yet", sub.topics)

    def _detach(self, sub: Subscription) -> None:
        gone_topics, gone_patterns = self._index.remove(sub)
        conn = self._conn
        if self._closed or conn is None:
            return
        for topic in gone_topics:
            self._enqueue(conn, "UNSUBSCRIBE", self._channel(topic))
        for pattern in gone_patterns:
            self._enqueue(conn, "PUNSUBSCRIBE", self._redis_pattern(pattern))

    def _enqueue(self, conn: AbstractConnection, *args: str) -> None:
        """Queue a command for the subscriber connection.

        All writes go through one queue and one task, in the order they were decided, so an
        UNSUBSCRIBE can never overtake a later SUBSCRIBE of the same name.
        """
        self._outbox.put_nowait((conn, args))

    async def _write_forever(self) -> None:
        """Write queued commands; the reader task reads their replies."""
        while True:
            conn, args = await self._outbox.get()
            # Never write on a connection the reader has given up on: redis-py would silently
            # reconnect it and leave a subscribed socket that nobody reads.
            if conn is not self._conn or not conn.is_connected:
                continue
            try:
                await conn.send_command(*args, check_health=False)
            except Exception as exc:  # the reader notices a dead connection and reconnects
                log.debug("event bus: %s not sent: %s", args[0], exc)

    # -- the reader --------------------------------------------------------------------------

    async def _connect_subscriber(self) -> AbstractConnection:
        """Open the subscriber connection and subscribe to everything wanted locally."""
        assert self._sub_pool is not None
        conn = self._sub_pool.make_connection()
        await conn.connect()
        self._conn = conn
        self._epoch += 1
        self._sent.clear()
        self._confirmed.clear()
        channels = [self._channel(t) for t in self._index.by_topic]
        patterns = [self._redis_pattern(p) for p in self._index.by_pattern]
        for name in channels:
            self._sent[("subscribe", name)] = 1
        for name in patterns:
            self._sent[("psubscribe", name)] = 1
        # Through the outbox, so these come before any command decided after this point.
        if channels:
            self._enqueue(conn, "SUBSCRIBE", *channels)
        if patterns:
            self._enqueue(conn, "PSUBSCRIBE", *patterns)
        return conn

    async def _read_forever(self, conn: AbstractConnection) -> None:
        """Read the subscriber connection, fan out, and reconnect with back-off when it drops."""
        delay = self.backoff[0]
        while True:
            try:
                while True:
                    # push_request: pub/sub messages are "push" replies; ask for them rather than
                    # letting redis-py hand them to its logging push handler. The pinger makes
                    # Redis answer at least every ping_interval, so a longer silence means a
                    # dead peer (a half-open TCP connection would otherwise block forever).
                    response = await conn.read_response(
                        push_request=True, timeout=self.ping_interval * 2.5
                    )
                    if response is None:  # redis-py's way of saying the read timed out
                        raise RedisTimeoutError("Redis silent for longer than the ping interval")
                    await self._dispatch(response)
                    delay = self.backoff[0]
            except _CONNECTION_ERRORS as exc:
                log.warning("event bus: Redis subscriber connection lost: %s", exc)
            except Exception:
                # A bug or a garbled reply: the stream position is unknown, so start afresh.
                log.exception("event bus: reader failed; reconnecting")
            self._conn = None
            await _quietly_disconnect(conn)
            while True:
                # Jitter so a fleet of processes does not reconnect in lock-step.
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                delay = min(delay * 2, self.backoff[1])
                try:
                    conn = await self._connect_subscriber()
                except Exception as exc:  # keep trying whatever the failure: never give up
                    self._conn = None
                    log.warning("event bus: Redis reconnect failed, retrying: %s", exc)
                    continue
                break
            self.reconnects += 1
            log.warning("event bus: reconnected to Redis; events during the gap are lost")
            gap = Event(RESYNC_TOPIC, {"reason": "reconnected"})
            for sub in list(self._index.all):
                sub._deliver(gap)

    async def _dispatch(self, response: Any) -> None:
        if not isinstance(response, list) or not response:
            return  # PONG outside subscribed mode
        kind = response[0]
        if kind == "message":
            channel = response[1]
            topic = channel[len(self.prefix) :]
            # Pattern-only subscribers get the "pmessage" copy instead.
            self._fan_out(channel, response[2], lambda sub: topic in sub.exact)
        elif kind == "pmessage":
            pattern, channel, payload = response[1], response[2], response[3]
            self._fan_out(channel, payload, self._pattern_filter(pattern, channel))
        elif kind in ("subscribe", "psubscribe"):
            key = (kind, response[1])
            self._confirmed[key] = self._confirmed.get(key, 0) + 1
            async with self._changed:
                self._changed.notify_all()

    def _pattern_filter(self, redis_pattern: str, channel: str) -> Callable[[Subscription], bool]:
        """Pick who gets a pmessage so a subscription with overlapping topics gets it once."""

        def wants(sub: Subscription) -> bool:
            topic = channel[len(self.prefix) :]
            if topic in sub.exact:
                return False  # the plain "message" copy delivers it
            first = next(p for p in sub.patterns if topic_matches(p, topic))
            return self._redis_pattern(first) == redis_pattern

        return wants

    def _fan_out(self, channel: str, payload: str, wants: Callable[[Subscription], bool]) -> None:
        if not channel.startswith(self.prefix):
            return
        topic = channel[len(self.prefix) :]
        for sub in self._index.matching(topic):
            if not wants(sub):
                continue
            try:
                data = json.loads(payload)
            except ValueError:
                log.warning("event bus: dropped a malformed event on %s", topic)
                return
            sub._deliver(Event(topic, data))

    async def _ping_forever(self) -> None:
        """Ping the subscriber connection so the reader hears from Redis at least this often."""
        while True:
            await asyncio.sleep(self.ping_interval)
            conn = self._conn
            if conn is not None:
                self._enqueue(conn, "PING")

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosedError("the bus is closed")
        if not self._started:
            raise BusClosedError("the bus is not started: call start() first")


async def _quietly_disconnect(conn: AbstractConnection) -> None:
    try:
        await conn.disconnect()
    except (RedisError, OSError) as exc:
        log.debug("event bus: error while dropping a dead connection: %s", exc)
