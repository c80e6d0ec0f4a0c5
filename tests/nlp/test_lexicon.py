"""The lexicon data files: valid, reviewed shape, and jieba keeps risk terms whole."""

from __future__ import annotations

from nlp.detector import get
from nlp.lexicon import load_patterns, load_terms
from nlp.types import CATEGORIES, Level


def test_every_entry_has_a_valid_category_floor_and_source() -> None:
    for term, e in load_terms().items():
        assert e.category in (*CATEGORIES, "-"), term
        assert isinstance(e.floor, Level)
        assert e.comment.strip(), f"{term}: no source comment"
    for p in load_patterns():
        assert p.entry.comment.strip(), p.entry.name


def test_every_category_has_urgent_terms() -> None:
    terms = load_terms()
    for cat in CATEGORIES:
        assert any(e.category == cat and e.floor >= Level.URGENT for e in terms.values()), cat


def test_multi_character_risk_terms_are_single_jieba_tokens() -> None:
    d = get()
    for sentence, term in [
        ("我真的好想死了", "好想死"),
        ("我想离开这个世界", "想离开这个世界"),
        ("他家暴我", "家暴"),
        ("安眠药攒够了", "安眠药"),
        ("我想死你了", "想死你了"),
    ]:
        tokens = [w for w, _a, _b in d._tokens(sentence)]
        assert term in tokens, tokens
