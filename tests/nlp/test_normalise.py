"""Normalisation: how children really write must reach the lexicon, with offsets kept."""

from __future__ import annotations

import pytest

from nlp import Level, assess
from nlp.detector import get


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("想 死", "想死"),
        ("想死死死", "想死"),
        ("ｚｉｓｈａ", "自杀"),
        ("zi sha", "自杀"),
        ("zs", "自杀"),
        ("自*杀", "自杀"),
        ("自x", "自杀"),
        ("紫砂", "自杀"),
        ("想鼠", "想死"),
        ("嘎了算了", "死了算了"),
        ("4了算了", "死了算了"),
        ("寄了算了", "死了算了"),
        ("我們學校", "我们学校"),
        ("💊", "药片"),
        ("🔪", "刀"),
        ("🪢", "绳子"),
    ],
)
def test_normalised_text(written: str, expected: str) -> None:
    assert get().normalise(written).text == expected


def test_offsets_point_back_into_the_original() -> None:
    text = "我想 z i s h a 了"
    a = assess("我真的想ｚｉｓｈａ")
    hit = next(h for h in a.hits if h.category == "suicide_self_harm")
    assert "ｚｉｓｈａ" in "我真的想ｚｉｓｈａ"[hit.start : hit.end]
    assert get().normalise(text).span(0, 1) == (0, 1)


@pytest.mark.parametrize(
    "text",
    [
        "我想 死",
        "想死死死死",
        "我想紫砂",
        "好想zisha",
        "想鼠了",
        "我想嘎了算了",
        "4了算了",
        "寄了算了",
        "我想自*杀",
        "我想離開這個世界",
        "ＷＯ想死",
        "不想活了😭😭😭",
        "zs算了",
    ],
)
def test_evasions_still_reach_a_human(text: str) -> None:
    assert assess(text).level >= Level.URGENT, assess(text)


def test_emoji_means_raise_a_wish_to_die() -> None:
    plain = assess("我不想活了")
    pills = assess("我不想活了💊💊💊")
    assert pills.level >= plain.level
    assert any(h.rule.startswith("combo:") for h in pills.hits)
    assert any("💊" in h.text for h in pills.hits)
