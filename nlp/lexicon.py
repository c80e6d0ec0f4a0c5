"""The reviewed lexicon and pattern files under nlp/data, loaded into lookup tables."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from nlp.types import CATEGORIES, Level

DATA = Path(__file__).parent / "data"
NO_CATEGORY = "-"


@dataclass(frozen=True, slots=True)
class Entry:
    """One lexicon term or pattern: what it means when it matches."""

    name: str  # the term itself, or the pattern's name
    category: str  # one of CATEGORIES, or "-" for modifiers and neutral tokens
    weight: float
    floor: Level
    tags: frozenset[str]
    comment: str
    # tags plus what follows from the floor: "means+" (a means that counts on its own: pills
    # saved, not a knife), "traffic+" (a child taken or sold, not 彩礼 in family talk)
    signals: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        extra = set()
        if "means" in self.tags and self.floor >= Level.ROUTINE:
            extra.add("means+")
        if "traffic" in self.tags and self.floor >= Level.URGENT:
            extra.add("traffic+")
        object.__setattr__(self, "signals", self.tags | extra)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression rule over normalised text."""

    regex: re.Pattern[str]
    entry: Entry


def _rows(name: str) -> list[list[str]]:
    rows = []
    for n, line in enumerate((DATA / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 5:
            raise ValueError(f"{name}:{n}: expected at least 5 tab-separated columns")
        rows.append(cols)
    return rows


def _entry(name: str, cols: list[str], where: str) -> Entry:
    category, weight, floor, tags = cols[0], cols[1], cols[2], cols[3]
    if category != NO_CATEGORY and category not in CATEGORIES:
        raise ValueError(f"{where}: unknown category {category!r}")
    return Entry(
        name=name,
        category=category,
        weight=float(weight),
        floor=Level.parse(floor),
        tags=frozenset(t.strip() for t in tags.split(",") if t.strip()),
        comment=cols[4] if len(cols) > 4 else "",
    )


def load_terms() -> dict[str, Entry]:
    """Lexicon terms (already normalised: Simplified, lower-case) to their entries."""
    terms: dict[str, Entry] = {}
    for cols in _rows("lexicon.tsv"):
        term = cols[0].strip().lower()
        if term in terms:
            raise ValueError(f"lexicon.tsv: duplicate term {term!r}")
        terms[term] = _entry(term, cols[1:], f"lexicon.tsv:{term}")
    return terms


PATTERN_FILES = ("patterns.tsv", "patterns_en.tsv")  # Chinese, then English
# A generator's leftovers: an unfilled {NAME}, or {0,40} turned into "(0, 40)" by an f-string.
_TEMPLATE_LEFTOVER = re.compile(r"\{[A-Z_][A-Z0-9_]*\}|\(\d+, \d+\)")


def load_patterns() -> list[Pattern]:
    """Regex rules in file order (names unique across the files)."""
    out = []
    seen: set[str] = set()
    for f in PATTERN_FILES:
        for cols in _rows(f):
            name, rx = cols[0], cols[1]
            if name in seen:
                raise ValueError(f"{f}: duplicate pattern name {name!r}")
            if _TEMPLATE_LEFTOVER.search(rx):
                raise ValueError(f"{f}:{name}: template text left in the regex: {rx[:60]!r}")
            seen.add(name)
            out.append(Pattern(re.compile(rx), _entry(name, cols[2:], f"{f}:{name}")))
    return out


def load_policy() -> dict[str, str]:
    """Key/value policy knobs from policy.tsv."""
    out = {}
    for line in (DATA / "policy.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            cols = line.split("\t")
            out[cols[0].strip()] = cols[1].strip()
    return out


# Tags that make an 'intent' entry more than a bare wish (they keep their floor under the policy).
_MORE_THAN_WISH = frozenset({"method", "means", "plan", "attempt", "burden", "time", "goodbye"})


def apply_wish_policy(entry: Entry, wish_level: Level) -> Entry:
    """Cap a bare wish-to-die entry at the policy level."""
    if "intent" in entry.tags and not entry.tags & _MORE_THAN_WISH and entry.floor > wish_level:
        return Entry(
            entry.name, entry.category, entry.weight, wish_level, entry.tags, entry.comment
        )
    return entry
