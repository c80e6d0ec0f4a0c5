"""The pattern prefilter is exact: it never skips a pattern that matches."""

from __future__ import annotations

import re
from pathlib import Path

from nlp import detector
from nlp.evaluate import read_rows
from nlp.prefilter import PatternIndex, first_chars

DEV = Path(__file__).resolve().parents[1] / "data" / "dev.jsonl"


def test_first_chars_of_simple_shapes() -> None:
    assert first_chars(re.compile("(想|要)死")) == frozenset("想要")
    assert first_chars(re.compile("^(?<!我)[ab]c")) == frozenset("ab")
    assert first_chars(re.compile("x?y")) is None  # optional start: cannot be bounded
    assert first_chars(re.compile("[^我]死")) is None


def test_prefilter_keeps_every_matching_pattern_on_the_dev_set() -> None:
    d = detector.get()
    regexes = [p.regex for p in d.patterns]
    index = PatternIndex(regexes)
    texts = [d.normalise(r.text).text for r in read_rows(DEV)]
    texts += ["", "一起", "我才好拉他一起去死", "12月24号晚上", "下辈子不要再做人了"]
    for s in texts:
        matching = {i for i, rx in enumerate(regexes) if rx.search(s)}
        assert matching <= set(index.candidates(s)), s
