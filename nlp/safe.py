"""The never-raising wrapper around the detector, with a plain substring fallback."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from nlp import detector
from nlp.types import Assessment, Hit, Level

log = logging.getLogger(__name__)


def _clean(x: object) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, bytes | bytearray):
        return bytes(x).decode("utf-8", "replace")
    return "" if x is None else str(x)


def assess(text: str, history: Sequence[str] = ()) -> Assessment:
    """detector.assess that never raises: on an internal error, a substring scan decides."""
    text = _clean(text)
    try:
        hist = [_clean(h) for h in (history or ())]
    except TypeError:
        hist = []
    try:
        return detector.get().assess(text, hist)
    except Exception:  # the pipeline must always get an answer; log and fall back
        log.exception("nlp detector failed; using substring fallback")
        return _fallback(text, hist)


def _fallback(text: str, history: Sequence[str]) -> Assessment:
    """Lexicon substring scan without jieba; when unsure, escalate (urgent at least on a hit)."""
    try:
        from nlp.lexicon import load_terms

        terms = load_terms()
    except Exception:
        return Assessment(Level.ROUTINE, (), "none", (Hit("", 0, 0, "context", 0.0, "error"),))
    hits = []
    level = Level.NONE
    for doc in [*history, text]:
        for term, e in terms.items():
            if e.floor >= Level.URGENT and len(term) >= 2 and term in doc:
                level = Level.URGENT
                if doc is text:
                    i = text.find(term)
                    hits.append(Hit(term, i, i + len(term), e.category, e.weight, "fallback"))
    cats = tuple(sorted({h.category for h in hits if h.category != "-"}))
    return Assessment(level, cats, "self" if hits else "none", tuple(hits))
