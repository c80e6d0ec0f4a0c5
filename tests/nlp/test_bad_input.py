"""Bad input: an assessment always comes back; long texts are assessed in windows."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from nlp import Assessment, Level, assess


def test_empty_and_blank() -> None:
    assert assess("") == Assessment()
    assert assess("   \n\t").level == Level.NONE


def test_emoji_only_and_junk() -> None:
    assert assess("😀😀😀🎮").level == Level.NONE
    junk = bytes(random.Random(1).randrange(256) for _ in range(4000)).decode("utf-8", "replace")
    assert isinstance(assess(junk), Assessment)
    assert isinstance(assess("\udc80\udcff\x00\x01 ab\u202e测试"), Assessment)


def test_mixed_scripts() -> None:
    assert assess("I want to die 我想死 ほんとうに").level >= Level.URGENT


def test_100kb_is_assessed_in_windows_not_truncated() -> None:
    filler = "今天天气很好我们去公园玩。" * 8000  # ~100 KB
    text = filler + "我爸正在打我"
    a = assess(text)
    assert a.level == Level.IMMINENT
    hit = next(h for h in a.hits if h.category == "physical_abuse")
    assert hit.start > len(filler) - 10
    assert text[hit.start : hit.end] == hit.text


def test_risk_at_a_window_boundary_is_found() -> None:
    for pad in range(330, 420, 7):
        text = "啊" * pad + "我想死" + "好" * 50
        assert assess(text).level >= Level.URGENT, pad


def test_non_string_history_items_do_not_crash() -> None:
    assert isinstance(assess("嗯", [b"\xe6\x83\xb3\xe6\xad\xbb", None]), Assessment)  # type: ignore[list-item]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300), st.lists(st.text(max_size=40), max_size=3))
def test_never_raises(text: str, history: list[str]) -> None:
    a = assess(text, history)
    assert isinstance(a.level, Level)
    for h in a.hits:
        assert 0 <= h.start <= h.end <= len(text)
