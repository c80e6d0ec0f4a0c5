"""Risk detection: assess(text, history) -> Assessment. Pure; no I/O after start-up."""

from __future__ import annotations

from collections.abc import Sequence

from nlp.types import CATEGORIES, Assessment, Hit, Level

__all__ = ["CATEGORIES", "Assessment", "Hit", "Level", "assess"]

# Placeholder keyword screen; replaced by the jieba + lexicon detector (issue 3).
_KEYWORDS = {
    "自杀": ("suicide_self_harm", Level.URGENT),
    "想死": ("suicide_self_harm", Level.URGENT),
    "打我": ("physical_abuse", Level.URGENT),
    "摸我": ("sexual_abuse", Level.URGENT),
    "欺负": ("bullying", Level.ROUTINE),
    "今晚": ("suicide_self_harm", Level.ROUTINE),
}


def assess(text: str, history: Sequence[str] = ()) -> Assessment:
    """Assess one message in the context of the conversation's earlier messages."""
    hits = []
    for word, (cat, _lvl) in _KEYWORDS.items():
        i = text.find(word)
        if i >= 0:
            hits.append(Hit(word, i, i + len(word), cat, 1.0, f"keyword:{word}"))
    level = max((_KEYWORDS[h.text][1] for h in hits), default=Level.NONE)
    cats = tuple(sorted({h.category for h in hits}))
    return Assessment(level, cats, "self" if hits else "none", tuple(hits))
