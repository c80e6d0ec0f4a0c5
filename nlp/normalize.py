"""Normalisation of how children write, with a map back to the original text's offsets."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data"

# Characters removed outright: zero-width, joiners, variation selectors, skin-tone modifiers.
_DROP = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\ufe0e", "\ufe0f"} | {
    chr(c) for c in range(0x1F3FB, 0x1F400)
}
# Separators children put inside a word to dodge filters (想 死, 自*杀, 自-杀, 自x杀).
_SEPARATORS = set(" \t\u3000*＊xX×#_-.·~/|\\、,，…") | {"\u00a0"}
# Curly and backtick apostrophes, straightened so that "don’t" reads as "don't".
_APOSTROPHES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"}
# Hard clause boundaries (for negation and subject scope).
_CLAUSE_PUNCT = set("。！？!?；;，,、\n\r…~～")


def is_cjk(ch: str) -> bool:
    """True for a CJK unified ideograph (the characters the lexicon is written in)."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


@dataclass(frozen=True, slots=True)
class Normalised:
    """Normalised text; starts[i]/ends[i] give the original span behind character i."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    breaks: frozenset[int]  # positions in text that begin a new clause (dropped spaces etc.)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original [start, end) behind normalised [start, end)."""
        if not self.text or end <= start:
            return (0, 0)
        return self.starts[start], self.ends[end - 1]


def _read_tsv(name: str) -> list[list[str]]:
    rows = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


class Normaliser:
    """Full/half width, Traditional to Simplified, case, emoji, spacing, masks, repeats, evasions."""

    def __init__(self) -> None:
        import opencc  # imported here so that importing nlp stays cheap

        self._cc = opencc.OpenCC("t2s")
        self._char: dict[str, str] = {}
        # Fast path: str.translate with the characters whose normal form differs, as long as
        # each maps to exactly one character (then offsets are the identity).
        self._table: dict[int, str] = {}
        self._seen: set[str] = set()
        self._multi: set[str] = set()  # characters that normalise to 0 or 2+ characters
        # Separators inside a word (想 死, 自*杀, 自x杀): up to 3, between two CJK characters.
        self._dropsep = frozenset(_SEPARATORS - _CLAUSE_PUNCT)
        cls = "".join(re.escape(c) for c in sorted(self._dropsep))
        cjk = "\u4e00-\u9fff\u3400-\u4dbf"
        self._sep_re = re.compile(f"(?<=[{cjk}])[{cls}]{{1,3}}(?=[{cjk}])")
        # Runs of three or more of the same character (想死死死, 啊啊啊), digits/spaces excepted.
        self._triple = re.compile(r"([^\d\s])\1{2,}")
        self._emoji = {r[0]: r[1] for r in _read_tsv("emoji.tsv")}
        plain: dict[str, str] = {}
        latin: dict[str, str] = {}
        for row in _read_tsv("variants.tsv"):
            variant, canonical, kind = row[0], row[1], row[2] if len(row) > 2 else ""
            (latin if kind == "pinyin" else plain)[variant.lower()] = canonical
        self._plain = plain
        self._plain_re = (
            re.compile("|".join(re.escape(v) for v in sorted(plain, key=len, reverse=True)))
            if plain
            else None
        )
        # English text-speak and contractions (english.tsv): whole words, one canonical spelling;
        # a quote mark is a boundary ('kys'), an apostrophe inside a word is not (don't).
        self._english = {r[0].lower(): r[1] for r in _read_tsv("english.tsv")}
        self._english_re = re.compile(
            r"(?<![a-z0-9])(?<![a-z]')(?:"
            + "|".join(re.escape(v) for v in sorted(self._english, key=len, reverse=True))
            + r")(?![a-z0-9])(?!'[a-z])"
        )
        # The first word of every variant: most English texts hold none, and a set test is
        # cheaper than the scan ("s/h" and "s.uicide" start with the word "s").
        self._english_first = frozenset(re.split(r"[ ./]", v)[0] for v in self._english)
        # Pinyin: whole Latin words, syllables optionally separated by spaces.
        self._latin = {k.replace(" ", ""): v for k, v in latin.items()}
        alts = sorted(latin, key=len, reverse=True)
        self._latin_re = (
            re.compile(
                r"(?<![a-z])(?:"
                + "|".join(" ?".join(map(re.escape, a.split(" "))) for a in alts)
                + r")(?![a-z])"
            )
            if alts
            else None
        )

    def _norm_char(self, ch: str) -> str:
        """One character after NFKC, lower-case, emoji table and Traditional -> Simplified."""
        out = self._char.get(ch)
        if out is not None:
            return out
        if ch in _DROP:
            out = ""
        elif ch in self._emoji:
            out = self._emoji[ch]
        elif ch in _APOSTROPHES:
            out = _APOSTROPHES[ch]
        else:
            out = unicodedata.normalize("NFKC", ch).lower()
            if any(is_cjk(c) for c in out):
                try:
                    conv = self._cc.convert(out)
                    out = conv if conv else out
                except Exception:  # lone surrogates and the like: keep the character
                    pass
        if len(self._char) < 200_000:  # bounded: junk input must not grow memory forever
            self._char[ch] = out
        return out

    def _learn(self, text: str) -> None:
        """Add the text's unseen characters to the translate table (bounded)."""
        new = set(text) - self._seen
        if not new or len(self._seen) > 200_000:
            return
        for ch in new:
            out = self._norm_char(ch)
            if len(out) != 1:
                self._multi.add(ch)
            elif out != ch:
                self._table[ord(ch)] = out
        # Table entries are written before the characters are marked seen, so a concurrent
        # caller either recomputes a character (harmless) or finds it complete.
        self._seen |= new

    def __call__(self, text: str) -> Normalised:
        """Normalise text, keeping for each output character the original span behind it."""
        self._learn(text)
        if self._multi.isdisjoint(text) and (
            len(self._seen) <= 200_000 or not set(text) - self._seen
        ):
            t = text.translate(self._table)
            st = list(range(len(t)))
            en = list(range(1, len(t) + 1))
        else:
            t, st, en = self._expand(text)
        brk: set[int] = set()
        if not self._dropsep.isdisjoint(t):
            t, st, en, brk = _edit(self._sep_re, t, st, en, brk, _drop, True)
        if self._triple.search(t):
            t, st, en, brk = _edit(self._triple, t, st, en, brk, _first, False)
        t, st, en, brk = self._replace(t, st, en, brk)
        return Normalised(t, tuple(st), tuple(en), frozenset(brk))

    def _expand(self, text: str) -> tuple[str, list[int], list[int]]:
        """Per-character mapping for texts with emoji or dropped characters."""
        chars: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        prev = ""
        for i, ch in enumerate(text):
            if ch == prev and ch in self._emoji:  # 💊💊💊 is one pill emoji, said loudly
                for k in range(len(self._emoji[ch])):
                    ends[-1 - k] = i + 1
                continue
            if ch not in _DROP:
                prev = ch
            for c in self._norm_char(ch):
                chars.append(c)
                starts.append(i)
                ends.append(i + 1)
        return "".join(chars), starts, ends

    def _replace(
        self, s: str, st: list[int], en: list[int], brk: set[int]
    ) -> tuple[str, list[int], list[int], set[int]]:
        """Rewrite evasions (紫砂, zisha, 自x) to their canonical words, keeping offsets."""
        if HAS_LATIN.search(s) and not self._english_first.isdisjoint(
            w.strip("'") for w in _WORD.findall(s)
        ):
            english = self._english
            s, st, en, brk = _edit(
                self._english_re, s, st, en, brk, lambda m: english[m.group(0)], False
            )
        if self._latin_re is not None and HAS_LATIN.search(s):
            latin = self._latin
            s, st, en, brk = _edit(
                self._latin_re, s, st, en, brk, lambda m: latin[m.group(0).replace(" ", "")], False
            )
        if self._plain_re is not None:
            plain = self._plain
            s, st, en, brk = _edit(
                self._plain_re, s, st, en, brk, lambda m: plain[m.group(0)], False
            )
        return s, st, en, brk


# After lower-casing, a Latin letter: is there pinyin or English to look at at all (shared by
# the detector, the English scope and the prefilter)
HAS_LATIN = re.compile("[a-z]")
_WORD = re.compile(r"[a-z0-9'*!@$-]+")  # a Latin word as english.tsv spells its variants


def _drop(_m: re.Match[str]) -> str:
    return ""


def _first(m: re.Match[str]) -> str:
    return m.group(1)


def _edit(
    rx: re.Pattern[str],
    s: str,
    st: list[int],
    en: list[int],
    brk: set[int],
    repl: Callable[[re.Match[str]], str],
    space_breaks: bool,
) -> tuple[str, list[int], list[int], set[int]]:
    """Replace every match of rx; each replacement character maps to the whole matched span.
    With space_breaks, a removed run that held whitespace starts a new clause."""
    pieces: list[str] = []
    ns: list[int] = []
    ne: list[int] = []
    nb: set[int] = set()
    last = 0
    found = False
    for m in rx.finditer(s):
        found = True
        a, b = m.span()
        for k in brk:
            if last <= k < a:
                nb.add(k - last + len(ns))
        pieces.append(s[last:a])
        ns.extend(st[last:a])
        ne.extend(en[last:a])
        if space_breaks and any(c.isspace() for c in m.group(0)):
            nb.add(len(ns))
        if any(a <= k < b for k in brk):
            nb.add(len(ns))
        r = repl(m)
        if r:
            o0, o1 = st[a], en[b - 1]
            pieces.append(r)
            ns.extend([o0] * len(r))
            ne.extend([o1] * len(r))
        last = b
    if not found:
        return s, st, en, brk
    for k in brk:
        if k >= last:
            nb.add(k - last + len(ns))
    pieces.append(s[last:])
    ns.extend(st[last:])
    ne.extend(en[last:])
    return "".join(pieces), ns, ne, nb
