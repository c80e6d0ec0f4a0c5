"""The pattern prefilter is exact: it never skips a pattern that matches."""

from __future__ import annotations

import re
from pathlib import Path

from nlp import detector
from nlp.evaluate import read_rows
from nlp.prefilter import PatternIndex, first_chars, required_chars
from nlp.train import load_everyday

DEV = Path(__file__).resolve().parents[1] / "data" / "dev.jsonl"


def test_first_chars_of_simple_shapes() -> None:
    assert first_chars(re.compile("(想|要)死")) == frozenset("想要")
    assert first_chars(re.compile("^(?<!我)[ab]c")) == frozenset("ab")
    assert first_chars(re.compile("x?y")) is None  # optional start: cannot be bounded
    assert first_chars(re.compile("[^我]死")) is None


def test_required_chars_pick_a_rarer_mandatory_part() -> None:
    assert required_chars(re.compile("(他|她)[^,]{0,6}(摸|亲)我")) == frozenset("摸亲")
    assert required_chars(re.compile("x?y")) == frozenset("y")
    assert required_chars(re.compile("(a|b?)c")) == frozenset("c")
    assert required_chars(re.compile("(ab|c)")) == frozenset("abc") - {"b"}  # cheapest per branch
    assert required_chars(re.compile("a*")) is None


def test_prefilter_keeps_every_matching_pattern_on_the_dev_set() -> None:
    d = detector.get()
    regexes = [p.regex for p in d.patterns]
    index = PatternIndex(regexes)
    texts = [
        d.normalise(r.text).text
        for f in sorted(DEV.parent.glob("*.jsonl"))  # every wave, held-out ones included
        for r in read_rows(f)
    ]
    texts += [d.normalise(t).text for t in load_everyday()[::3]]
    texts += ["", "一起", "我才好拉他一起去死", "12月24号晚上", "下辈子不要再做人了"]
    texts += ["i am not safe right now", "help", "还有10分钟放学", "現在7點40"]
    for s in texts:
        matching = {i for i, rx in enumerate(regexes) if rx.search(s)}
        assert matching <= set(index.candidates(s)), s
