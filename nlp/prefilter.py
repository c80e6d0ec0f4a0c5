"""Exact prefilter for the regex patterns: a pattern can only match a text that contains one of
the characters some mandatory part of its match must be (its first characters, or rarer ones
further in), so patterns are indexed by the cheapest such set and only the ones a text can
trigger are run (the same matches, fewer regex scans)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from nlp.normalize import HAS_LATIN

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


def _walk(rx: re.Pattern[str], walk: Any) -> Any:
    """walk() over rx's parsed form; None where that cannot be done (no parser, IGNORECASE)."""
    if _p is None or rx.flags & re.IGNORECASE:
        return None
    try:
        return walk(list(_parsed(rx.pattern, rx.flags)))
    except Exception:
        return None


@lru_cache(maxsize=4096)
def _parsed(pattern: str, flags: int) -> Any:
    """The parser's tree of a pattern: each index walks it several times (start-up time)."""
    return _p.parse(pattern, flags)


def forget_parses() -> None:
    """Drop the cached parser trees once the indexes are built (they are only for start-up)."""
    _parsed.cache_clear()


def _chars(rx: re.Pattern[str], walk: Any) -> frozenset[str] | None:
    """walk() over rx's parsed form, as a bounded set (None: no prefilter for rx)."""
    out = _walk(rx, walk)
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


_LATIN_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")


class PatternIndex:
    """Patterns indexed by first character: which of them a given text could match. Patterns
    that need a Latin letter (English) are indexed by the literal strings they require instead
    (TrigramIndex): their letters occur in every English text, their words do not."""

    def __init__(self, regexes: Sequence[re.Pattern[str]]) -> None:
        self.always: list[int] = []
        self.by_char: dict[str, list[int]] = {}
        latin: list[int] = []
        for i, rx in enumerate(regexes):
            fc = required_chars(rx) or first_chars(rx)
            if fc is None:
                self.always.append(i)
                continue
            if fc <= _LATIN_LETTERS:
                latin.append(i)  # no match without a Latin letter: gate on its words
                continue
            for ch in fc:
                self.by_char.setdefault(ch, []).append(i)
        self._latin_ids = latin
        self._latin = TrigramIndex([regexes[i] for i in latin])

    def candidates(self, text: str) -> list[int]:
        """Indexes (in file order) of the patterns that can match somewhere in text."""
        got = set(self.always)
        by_char = self.by_char
        for ch in set(text):
            idx = by_char.get(ch)
            if idx:
                got.update(idx)
        if self._latin_ids and HAS_LATIN.search(text):
            ids = self._latin_ids
            got.update(ids[j] for j in self._latin.candidates(text))
        return sorted(got)


def required_strings(rx: re.Pattern[str]) -> frozenset[str] | None:
    """Literal strings of which every match of rx contains at least one (None: not bounded)."""
    got = _walk(rx, _strings)
    return frozenset(got) if got else None


def _strings(items: list[tuple[Any, Any]]) -> set[str] | None:
    """Of a sequence's mandatory parts, the literal run or group whose strings are longest."""
    options: list[set[str]] = []
    run: list[str] = []
    for op, av in items:
        if op == _c.LITERAL:
            run.append(chr(av))
            continue
        if run:
            options.append({"".join(run)})
            run = []
        if op == _c.SUBPATTERN:
            got = _strings(list(av[-1]))
        elif op == _c.BRANCH:
            got = _branch(av[1])
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT) and av[0] >= 1:
            got = _strings(list(av[2]))
        else:
            got = None
        if got:
            options.append(got)
    if run:
        options.append({"".join(run)})
    return max(options, key=lambda o: min(map(len, o)), default=None)


def _branch(alts: list[Any]) -> set[str] | None:
    acc: set[str] = set()
    for alt in alts:
        got = _strings(list(alt))
        if not got:
            return None  # one alternative requires no literal we can name
        acc |= got
    return acc


class TrigramIndex:
    """Patterns indexed by the first three characters of the literal strings they require: for
    English patterns, whose first letters occur in every English text, a far sharper gate."""

    def __init__(self, regexes: Sequence[re.Pattern[str]]) -> None:
        self.always: list[int] = []
        self.by_gram: dict[str, list[int]] = {}
        for i, rx in enumerate(regexes):
            strings = required_strings(rx)
            if strings is None or min(map(len, strings)) < 3:
                self.always.append(i)
                continue
            for g in {s[:3] for s in strings}:
                self.by_gram.setdefault(g, []).append(i)

    def candidates(self, text: str) -> list[int]:
        """Indexes (in order) of the patterns that can match somewhere in text."""
        got = set(self.always)
        by_gram = self.by_gram
        for g in {text[i : i + 3] for i in range(len(text) - 2)}:
            idx = by_gram.get(g)
            if idx:
                got.update(idx)
        return sorted(got)
