"""The detector's result types: risk levels, hits and the assessment of one message."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

CATEGORIES: tuple[str, ...] = (
    "suicide_self_harm",
    "sexual_abuse",
    "physical_abuse",
    "neglect_abandonment",
    "bullying",
    "online_harm",
    "other_rights",
)
SUBJECTS: tuple[str, ...] = ("self", "other", "none")


class Level(IntEnum):
    """How soon a human must see a conversation; ordered so that max() means 'worse'."""

    NONE = 0
    ROUTINE = 1  # a concern to record and follow up
    URGENT = 2  # serious harm ongoing or recent, or a wish to die: a human today
    IMMINENT = 3  # danger now or within hours: a human now, 110 / 120 shown at once

    @property
    def label(self) -> str:
        """Lower-case name used on the wire and in the database."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | int) -> Level:
        """Level from its label ('urgent') or number (2)."""
        if isinstance(value, int):
            return cls(value)
        return cls[value.strip().upper()]


@dataclass(frozen=True, slots=True)
class Hit:
    """One matched phrase: what was written, where, and which rule made it count."""

    text: str
    start: int
    end: int
    category: str
    weight: float
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "category": self.category,
            "weight": self.weight,
            "rule": self.rule,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Hit:
        """Inverse of to_dict."""
        return cls(
            text=str(d["text"]),
            start=int(d["start"]),
            end=int(d["end"]),
            category=str(d["category"]),
            weight=float(d.get("weight", 0.0)),
            rule=str(d.get("rule", "")),
        )


@dataclass(frozen=True, slots=True)
class Assessment:
    """The detector's verdict on one message, in the context of its conversation."""

    level: Level = Level.NONE
    categories: tuple[str, ...] = ()
    subject: str = "none"
    hits: tuple[Hit, ...] = field(default_factory=tuple)

    @property
    def needs_human(self) -> bool:
        """True when the conversation must reach a volunteer (urgent or imminent)."""
        return self.level >= Level.URGENT

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored with the message and printed by `qingting assess`."""
        return {
            "level": self.level.label,
            "categories": list(self.categories),
            "subject": self.subject,
            "hits": [h.to_dict() for h in self.hits],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Assessment:
        """Inverse of to_dict."""
        return cls(
            level=Level.parse(d.get("level", "none")),
            categories=tuple(d.get("categories", ())),
            subject=str(d.get("subject", "none")),
            hits=tuple(Hit.from_dict(h) for h in d.get("hits", ())),
        )
