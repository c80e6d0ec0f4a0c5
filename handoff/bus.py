"""The event bus: live events between the processes of the service.

Topics are dotted strings ("conversation.<id>", "console", "volunteer.<user_id>"). A
subscription may name exact topics or patterns where ``*`` matches any run of characters
("conversation.*"). Events are best effort: the database is the source of truth, and a
subscriber that may have missed events receives an ``Event(RESYNC_TOPIC, ...)`` telling it to
reload from the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000
# Reserved: only the bus itself emits events here, to tell a subscriber it may have missed some.
RESYNC_TOPIC = "bus.resync"
_RESERVED_PREFIX = "bus."


@dataclass(frozen=True)
class Event:
    """One event: a topic and its JSON-serialisable payload."""

    topic: str
    data: dict[str, Any]


class BusClosedError(RuntimeError):
    """Raised when a closed (or not yet started) bus is used."""


def is_pattern(topic: str) -> bool:
    """Tell whether a subscription topic is a pattern (contains ``*``)."""
    return "*" in topic


@lru_cache(maxsize=1024)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def topic_matches(pattern: str, topic: str) -> bool:
    """Tell whether ``topic`` matches a subscription topic (exact, or ``*`` wildcards)."""
    if not is_pattern(pattern):
        return pattern == topic
    return _pattern_regex(pattern).fullmatch(topic) is not None


def check_publish_topic(topic: str) -> None:
    """Reject topics that cannot be published to (empty, wildcard, reserved)."""
    if not isinstance(topic, str) or not topic:
        raise ValueError("topic must be a non-empty string")
    if is_pattern(topic):
        raise ValueError(f"cannot publish to a pattern: {topic!r}")
    if topic.startswith(_RESERVED_PREFIX):
        raise ValueError(f"topics starting with {_RESERVED_PREFIX!r} are reserved: {topic!r}")


def encode_event(data: dict[str, Any]) -> str:
    """Serialise a payload; both backends do this so they accept and return the same data."""
    if not isinstance(data, dict):
        raise TypeError("event data must be a dict")
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class _Hub(Protocol):
    """What a Subscription needs from its bus."""

    async def _attach(self, sub: Subscription) -> None: ...

    def _detach(self, sub: Subscription) -> None: ...


class Subscription:
    """A live subscription: ``async with bus.subscribe(...) as sub: async for event in sub``.

    Each subscription has its own bounded queue so a slow reader never blocks publishers or
    other subscribers: on overflow the oldest events are dropped, a warning is logged, and the
    next event read is a resync event. Meant for one reader task.
    """

    def __init__(self, hub: _Hub, topics: Iterable[str], maxsize: int) -> None:
        topics = tuple(dict.fromkeys(topics))
        if not topics:
            raise ValueError("subscribe needs at least one topic")
        for topic in topics:
            if not isinstance(topic, str) or not topic:
                raise ValueError("topics must be non-empty strings")
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._hub = hub
        self.topics: tuple[str, ...] = topics
        self.exact: frozenset[str] = frozenset(t for t in topics if not is_pattern(t))
        # Sorted so every process picks the same "first" pattern when several match.
        self.patterns: tuple[str, ...] = tuple(sorted(t for t in topics if is_pattern(t)))
        self.maxsize = maxsize
        self.dropped = 0  # total events dropped on overflow, for metrics and tests
        self._queue: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self._active = False
        self._finished = False
        self._overflow_pending = 0  # drops not yet announced to the reader by a resync event

    def matches(self, topic: str) -> bool:
        """Tell whether an event on ``topic`` is for this subscription."""
        if topic in self.exact:
            return True
        return any(topic_matches(p, topic) for p in self.patterns)

    async def __aenter__(self) -> Subscription:
        if self._active or self._finished:
            raise RuntimeError("a subscription can be entered only once")
        await self._hub._attach(self)
        self._active = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._active:
            self._active = False
            self._hub._detach(self)
        self._finish()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if not self._active and not self._finished:
            raise RuntimeError("use the subscription inside 'async with'")
        while True:
            if self._overflow_pending:
                dropped, self._overflow_pending = self._overflow_pending, 0
                return Event(RESYNC_TOPIC, {"reason": "overflow", "dropped": dropped})
            if self._queue:
                return self._queue.popleft()
            if self._finished:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()

    def _deliver(self, event: Event) -> None:
        """Queue an event without ever blocking; drop the oldest when full."""
        if self._finished:
            return
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
            self._overflow_pending += 1
            # Once per overflow episode and then every 1000 drops, so logs are not flooded.
            if self._overflow_pending == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "event bus subscriber %s is too slow: dropped %d event(s) so far",
                    ",".join(self.topics),
                    self.dropped,
                )
        self._queue.append(event)
        self._wakeup.set()

    def _finish(self) -> None:
        """End iteration once the queued events are read (bus closed or context left)."""
        self._finished = True
        self._wakeup.set()


@runtime_checkable
class EventBus(Protocol):
    """Publish/subscribe of live events between the processes of the service."""

    async def start(self) -> None:
        """Connect; must be called before use."""
        ...

    async def close(self) -> None:
        """Stop: end every subscription and release connections."""
        ...

    async def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Send an event to every subscriber of ``topic`` in every process."""
        ...

    def subscribe(self, *topics: str, maxsize: int | None = None) -> Subscription:
        """Return a subscription to topics or ``*`` patterns (enter it to start receiving)."""
        ...


class _LocalIndex:
    """Which local subscriptions want which topic; shared by both backends."""

    def __init__(self) -> None:
        self.by_topic: dict[str, set[Subscription]] = {}
        self.by_pattern: dict[str, set[Subscription]] = {}
        self.all: set[Subscription] = set()

    def add(self, sub: Subscription) -> tuple[list[str], list[str]]:
        """Index ``sub``; return the exact topics and patterns nobody had subscribed to before."""
        new_topics = [t for t in sub.exact if t not in self.by_topic]
        new_patterns = [p for p in sub.patterns if p not in self.by_pattern]
        for t in sub.exact:
            self.by_topic.setdefault(t, set()).add(sub)
        for p in sub.patterns:
            self.by_pattern.setdefault(p, set()).add(sub)
        self.all.add(sub)
        return new_topics, new_patterns

    def remove(self, sub: Subscription) -> tuple[list[str], list[str]]:
        """Unindex ``sub``; return the exact topics and patterns nobody subscribes to any more."""
        gone_topics: list[str] = []
        gone_patterns: list[str] = []
        for t in sub.exact:
            subs = self.by_topic.get(t)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.by_topic[t]
                    gone_topics.append(t)
        for p in sub.patterns:
            subs = self.by_pattern.get(p)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self.by_pattern[p]
                    gone_patterns.append(p)
        self.all.discard(sub)
        return gone_topics, gone_patterns

    def matching(self, topic: str) -> set[Subscription]:
        """Every subscription that wants ``topic``, each once."""
        found = set(self.by_topic.get(topic, ()))
        for pattern, subs in self.by_pattern.items():
            if topic_matches(pattern, topic):
                found |= subs
        return found

    def finish_all(self) -> None:
        """End every subscription (bus closing)."""
        for sub in list(self.all):
            sub._finish()
        self.by_topic.clear()
        self.by_pattern.clear()
        self.all.clear()


class InProcessBus:
    """The default bus: delivers within this process only, through per-subscription queues."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._index = _LocalIndex()
        self._started = False
        self._closed = False

    async def start(self) -> None:
        """Mark the bus ready (nothing to connect)."""
        if self._closed:
            raise BusClosedError("the bus is closed")
        self._started = True

    async def close(self) -> None:
        """End every subscription; later publishes raise BusClosedError."""
        self._closed = True
        self._index.finish_all()

    async def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Deliver an event to the matching subscriptions of this process."""
        self._check_open()
        check_publish_topic(topic)
        payload = encode_event(data)
        for sub in self._index.matching(topic):
            # Each subscriber gets its own copy, as it would from Redis.
            sub._deliver(Event(topic, json.loads(payload)))

    def subscribe(self, *topics: str, maxsize: int | None = None) -> Subscription:
        """Return a subscription to topics or ``*`` patterns (enter it to start receiving)."""
        return Subscription(self, topics, maxsize or self.queue_size)

    async def _attach(self, sub: Subscription) -> None:
        self._check_open()
        self._index.add(sub)

    def _detach(self, sub: Subscription) -> None:
        self._index.remove(sub)

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosedError("the bus is closed")
        if not self._started:
            raise BusClosedError("the bus is not started: call start() first")


def create_bus(
    redis_url: str | None,
    *,
    prefix: str = "qingting:",
    queue_size: int = DEFAULT_QUEUE_SIZE,
) -> EventBus:
    """Build the bus the settings ask for: Redis pub/sub when a URL is given, else in-process."""
    if not redis_url:
        return InProcessBus(queue_size=queue_size)
    from handoff.bus_redis import RedisBus  # imported lazily: in-process use needs no Redis

    return RedisBus(redis_url, prefix=prefix, queue_size=queue_size)
