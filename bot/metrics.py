"""Prometheus metrics of one serving process: what an on-call person watches at 2 a.m."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """The process's counters, kept in their own registry (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "qingting_messages_total", "Inbound messages answered", ["kind"], registry=r
        )
        self.turn_seconds = Histogram(
            "qingting_turn_seconds",
            "Time to process one inbound message (store to reply)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.risk = Counter(
            "qingting_assessments_total", "Messages by assessed risk level", ["level"], registry=r
        )
        self.handoffs = Counter(
            "qingting_handoffs_requested_total", "Conversations queued for a person", registry=r
        )
        self.failures = Counter(
            "qingting_turn_failures_total",
            "Turns that failed (the child got the fallback)",
            registry=r,
        )
        self.waiting = Gauge(
            "qingting_queue_waiting", "Conversations waiting for a person now", registry=r
        )
        self.volunteers = Gauge(
            "qingting_volunteers_available", "Volunteers online with room for a chat", registry=r
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
