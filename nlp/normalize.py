"""Normalisation of how children write, with a map back to the original text's offsets."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data"

# Characters removed outright: zero-width, joiners, variation selectors, skin-tone modifiers.
_DROP = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\ufe0e", "\ufe0f"} | {
    chr(c) for c in range(0x1F3FB, 0x1F400)
}
# Separators children put inside a word to dodge filters (想 死, 自*杀, 自-杀, 自x杀).
_SEPARATORS = set(" \t\u3000*＊xX×#_-.·~/|\\、,，…") | {"\u00a0"}
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
        self._sep = frozenset(_SEPARATORS)
        self._triple = re.compile(r"(.)\1\1")
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

    def __call__(self, text: str) -> Normalised:
        """Normalise text, keeping for each output character the original span behind it."""
        new = set(text) - self._seen
        if new and len(self._seen) < 200_000:
            for ch in new:
                out = self._norm_char(ch)
                if len(out) != 1:
                    self._multi.add(ch)
                elif out != ch:
                    self._table[ord(ch)] = out
            self._seen |= new
        elif new:
            return self._slow(text)
        if self._multi.isdisjoint(text):
            t = text.translate(self._table)
            if self._sep.isdisjoint(t) and not self._triple.search(t):
                n = len(t)
                s, st, en, brk = self._replace(t, list(range(n)), list(range(1, n + 1)), set())
                return Normalised(s, tuple(st), tuple(en), frozenset(brk))
        return self._slow(text)

    def _slow(self, text: str) -> Normalised:
        """The general path: per-character mapping, separators, repeats, evasions."""
        chars: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        breaks: set[int] = set()
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
        # Drop separators that sit between two CJK characters (想 死 -> 想死); whitespace that
        # is dropped still ends a clause for negation/subject scope unless it split one word.
        kept: list[int] = []
        n = len(chars)
        i = 0
        while i < n:
            c = chars[i]
            if c in _SEPARATORS and kept and is_cjk(chars[kept[-1]]):
                j = i
                while j < n and chars[j] in _SEPARATORS and j - i < 3:
                    j += 1
                if j < n and is_cjk(chars[j]):
                    if any(chars[k].isspace() for k in range(i, j)):
                        breaks.add(len(kept))
                    elif any(chars[k] in _CLAUSE_PUNCT for k in range(i, j)):
                        breaks.add(len(kept))
                    if not all(chars[k] in _CLAUSE_PUNCT for k in range(i, j)):
                        i = j
                        continue
            kept.append(i)
            i += 1
        # Collapse runs of three or more of the same character (想死死死 -> 想死, 啊啊啊 -> 啊).
        t_c: list[str] = []
        t_s: list[int] = []
        t_e: list[int] = []
        out_breaks: set[int] = set()
        m = len(kept)
        pos = 0
        while pos < m:
            c = chars[kept[pos]]
            run = pos + 1
            while run < m and chars[kept[run]] == c and run not in breaks:
                run += 1
            if pos in breaks:
                out_breaks.add(len(t_c))
            if run - pos >= 3 and not c.isdigit() and not c.isspace():
                t_c.append(c)
                t_s.append(starts[kept[pos]])
                t_e.append(ends[kept[run - 1]])
            else:
                for q in range(pos, run):
                    t_c.append(c)
                    t_s.append(starts[kept[q]])
                    t_e.append(ends[kept[q]])
            pos = run
        s = "".join(t_c)
        s, t_s, t_e, out_breaks = self._replace(s, t_s, t_e, out_breaks)
        return Normalised(s, tuple(t_s), tuple(t_e), frozenset(out_breaks))

    def _replace(
        self, s: str, st: list[int], en: list[int], brk: set[int]
    ) -> tuple[str, list[int], list[int], set[int]]:
        """Rewrite evasions (紫砂, zisha, 自x) to their canonical words, keeping offsets."""
        for rx, table, squash in (
            (self._latin_re, self._latin, True),
            (self._plain_re, self._plain, False),
        ):
            if rx is None or not s:
                continue
            if squash and not any("a" <= c <= "z" for c in s):
                continue
            matches = list(rx.finditer(s))
            if not matches:
                continue
            nc: list[str] = []
            ns: list[int] = []
            ne: list[int] = []
            nb: set[int] = set()
            last = 0
            for m in matches:
                for k in range(last, m.start()):
                    if k in brk:
                        nb.add(len(nc))
                    nc.append(s[k])
                    ns.append(st[k])
                    ne.append(en[k])
                key = m.group(0).replace(" ", "") if squash else m.group(0)
                rep = table[key]
                o0, o1 = st[m.start()], en[m.end() - 1]
                for c in rep:
                    nc.append(c)
                    ns.append(o0)
                    ne.append(o1)
                last = m.end()
            for k in range(last, len(s)):
                if k in brk:
                    nb.add(len(nc))
                nc.append(s[k])
                ns.append(st[k])
                ne.append(en[k])
            s, st, en, brk = "".join(nc), ns, ne, nb
        return s, st, en, brk
