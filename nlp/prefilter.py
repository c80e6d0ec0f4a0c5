"""Exact prefilter for the regex patterns: a pattern can only match a text that contains one of
the characters some mandatory part of its match must be (its first characters, or rarer ones
further in), so patterns are indexed by the cheapest such set and only the ones a text can
trigger are run (the same matches, fewer regex scans)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

try:  # the regex parser of the standard library (private, stable since 3.11)
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older/other Pythons: no prefilter, same results
    _p = _c = None  # type: ignore[assignment]

_MAX_SET = 400  # a first-character set larger than this is not worth indexing
# Characters in almost every Chinese message: a set containing them triggers its pattern often.
_COMMON = frozenset("我他她你的了是在不有人就都也要说这一个没们")


def first_chars(rx: re.Pattern[str]) -> frozenset[str] | None:
    """Characters a match of rx must start with, or None when that cannot be bounded."""
    return _chars(rx, _seq)


def _chars(rx: re.Pattern[str], walk: Any) -> frozenset[str] | None:
    """walk() over rx's parsed form, as a bounded set (None: no prefilter for rx)."""
    if _p is None or rx.flags & re.IGNORECASE:
        return None
    try:
        out = walk(list(_p.parse(rx.pattern, rx.flags)))
    except Exception:
        return None
    return frozenset(out) if out is not None and len(out) <= _MAX_SET else None


def _seq(items: list[tuple[Any, Any]]) -> set[str] | None:
    """First characters of a sequence; None if it can match the empty string or is unbounded."""
    for op, av in items:
        if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            continue  # ^, $, lookarounds consume nothing: look at what follows
        return _item(op, av)
    return None  # empty sequence: matches at any position


def _item(op: Any, av: Any) -> set[str] | None:
    if op == _c.LITERAL:
        return {chr(av)}
    if op == _c.IN:
        chars: set[str] = set()
        for iop, iav in av:
            if iop == _c.LITERAL:
                chars.add(chr(iav))
            elif iop == _c.RANGE and iav[1] - iav[0] <= _MAX_SET:
                chars.update(chr(k) for k in range(iav[0], iav[1] + 1))
            else:
                return None  # negated classes, categories (\d, \s): unbounded
        return chars
    if op == _c.SUBPATTERN:
        return _seq(list(av[-1]))
    if op == _c.BRANCH:
        acc: set[str] = set()
        for alt in av[1]:
            got = _seq(list(alt))
            if got is None:
                return None
            acc |= got
        return acc
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        lo, _hi, sub = av
        return _seq(list(sub)) if lo >= 1 else None
    return None


def required_chars(rx: re.Pattern[str]) -> frozenset[str] | None:
    """The cheapest set of characters of which every match of rx contains at least one."""
    return _chars(rx, _need)


# In mixed text a space, and in any text digits (ages, times, counts), are frequent too: an
# English pattern indexed by its letters runs only where there are Latin words.
_FREQUENT = frozenset(" 0123456789")


def _cost(chars: set[str]) -> int:
    return len(chars) + 50 * len(chars & _COMMON) + 20 * len(chars & _FREQUENT)


def _need(items: list[tuple[Any, Any]]) -> set[str] | None:
    """Of the mandatory items of a sequence, the one whose characters are cheapest to require."""
    best: set[str] | None = None
    for op, av in items:
        got = _need_item(op, av)
        if got is not None and (best is None or _cost(got) < _cost(best)):
            best = got
    return best


def _need_item(op: Any, av: Any) -> set[str] | None:
    if op in (_c.LITERAL, _c.IN):
        return _item(op, av)
    if op == _c.SUBPATTERN:
        return _need(list(av[-1]))
    if op == _c.BRANCH:
        acc: set[str] = set()
        for alt in av[1]:
            got = _need(list(alt))
            if got is None:
                return None  # one alternative requires nothing we can name
            acc |= got
        return acc
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        lo, _hi, sub = av
        return _need(list(sub)) if lo >= 1 else None
    return None  # anchors, lookarounds, '.', negated sets: no character is required


class PatternIndex:
    """Patterns indexed by first character: which of them a given text could match."""

    def __init__(self, regexes: Sequence[re.Pattern[str]]) -> None:
        self.always: list[int] = []
        self.by_char: dict[str, list[int]] = {}
        for i, rx in enumerate(regexes):
            fc = required_chars(rx) or first_chars(rx)
            if fc is None:
                self.always.append(i)
                continue
            for ch in fc:
                self.by_char.setdefault(ch, []).append(i)

    def candidates(self, text: str) -> list[int]:
        """Indexes (in file order) of the patterns that can match somewhere in text."""
        got = set(self.always)
        by_char = self.by_char
        for ch in set(text):
            idx = by_char.get(ch)
            if idx:
                got.update(idx)
        return sorted(got)
