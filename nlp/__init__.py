"""Risk detection: assess(text, history) -> Assessment. Pure; no I/O after start-up."""

from __future__ import annotations

from collections.abc import Sequence

from nlp.types import CATEGORIES, Assessment, Hit, Level

__all__ = ["CATEGORIES", "Assessment", "Hit", "Level", "assess"]


def assess(text: str, history: Sequence[str] = ()) -> Assessment:
    """Assess one message in the context of the conversation's earlier messages."""
    from nlp import safe  # deferred: importing nlp must stay cheap

    return safe.assess(text, history)
