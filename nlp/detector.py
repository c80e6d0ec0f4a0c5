"""The rule detector: normalise, segment with jieba (user dictionary = lexicon), match terms and
patterns, apply negation / past / hyperbole / report scope, combine signals, decide the subject."""

from __future__ import annotations

import gc
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from operator import methodcaller
from pathlib import Path
from typing import Any

from nlp import english, rules
from nlp.lexicon import (
    NO_CATEGORY,
    Entry,
    Pattern,
    apply_wish_policy,
    load_patterns,
    load_policy,
    load_terms,
)
from nlp.normalize import _CLAUSE_PUNCT, HAS_LATIN, Normalised, Normaliser
from nlp.prefilter import PatternIndex, forget_parses
from nlp.stage2 import MODEL as STAGE2_MODEL
from nlp.stage2 import Stage2, content
from nlp.types import CATEGORIES, Assessment, Hit, Level

WINDOW = 400  # characters per window for long texts (assessed in overlapping windows)
OVERLAP = 60
MAX_HISTORY = 8  # earlier messages whose signals combine with the current one
STAGE2_MIN_CHARS = 12  # below this a bag of n-grams says more about the intercept than the text
USER_FREQ = 200_000  # jieba frequency for lexicon terms: high enough to stay one token

FIRST_PERSON = frozenset({"我", "俺", "本人", "我们", "咱", "咱们", "人家"})
THIRD_PERSON = frozenset({"他", "她", "他们", "她们"})
NEG_SKIP = frozenset(
    {
        "想过",
        "想",
        "过",
        "有",
        "要",
        "去",
        "会",
        "打算",
        "敢",
        "再",
        "真的",
        "是",
        "想要",
        "要去",
        "想去",
        "曾",
        "曾经",
        "我",
        "也",
        "还",
        "都",
        "就",
    }
)
ONGOING = ("又", "还", "一直", "经常", "总是", "天天", "每天", "现在", "今天", "老是", "仍然")


@dataclass(slots=True)
class _Match:
    start: int  # offsets in the normalised text
    end: int
    entry: Entry
    rule: str
    negated: bool = False
    past: bool = False
    unanchored: bool = False  # about adults / society, not about a child in this chat
    subject: str = "self"

    @property
    def floor(self) -> Level:
        if self.negated and self.entry.category == rules.SUICIDE:
            return Level.ROUTINE  # "我没想过死": the topic came up; record it, no alarm
        if (self.negated or self.past or self.unanchored) and self.entry.floor > Level.ROUTINE:
            return Level.ROUTINE
        return self.entry.floor

    @property
    def active(self) -> bool:
        return not (self.negated or self.past or self.unanchored)


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the detector concluded about one text on its own."""

    level: Level
    categories: tuple[str, ...]
    subject: str
    hits: tuple[Hit, ...]
    signals: frozenset[str]  # active signals, for combination across turns
    signal_text: tuple[tuple[str, str, str], ...]  # (signal, phrase, category) for history hits
    capped: bool  # report/resolved cap applied: its signals must not combine across turns
    subject_hint: str = "none"  # whose signals these are, even when none counts on its own


class Detector:
    """Loaded lexicon, patterns, normaliser and jieba tokenizer; built once per process."""

    def __init__(self, policy: dict[str, str] | None = None) -> None:
        import jieba

        jieba.setLogLevel(60)  # jieba prints start-up chatter on stderr otherwise
        self.policy = {**load_policy(), **(policy or {})}
        wish = Level.parse(self.policy.get("wish_to_die_level", "urgent"))
        self.terms = {t: apply_wish_policy(e, wish) for t, e in load_terms().items()}
        self.patterns: list[Pattern] = [
            Pattern(p.regex, apply_wish_policy(p.entry, wish)) for p in load_patterns()
        ]
        self.stage2: Stage2 | None = None
        if self.policy.get("stage2", "on") == "on" and STAGE2_MODEL.exists():
            self.stage2 = Stage2(STAGE2_MODEL)
        self._stage2_gate = self.policy.get("stage2_gate", "suicide")
        if self._stage2_gate not in ("suicide", "rules", "none"):
            raise ValueError(f"stage2_gate must be suicide, rules or none: {self._stage2_gate!r}")
        self.normalise = Normaliser()
        # jieba's dictionary cut to frequent words (nlp/build_dict.py): ~10x faster to load.
        small = Path(__file__).parent / "data" / "jieba_dict.txt"
        tk = jieba.Tokenizer(str(small)) if small.exists() else jieba.Tokenizer()
        tk.tmp_dir = _cache_dir()
        tk.initialize()
        for term, entry in self.terms.items():
            if len(term) < 2:
                continue  # single characters are already in jieba's dictionary
            strong = (
                entry.category != NO_CATEGORY
                or entry.floor > Level.NONE
                or entry.tags & {"hyperbole", "neutral"}
            )
            have = tk.FREQ.get(term, 0)
            tk.add_word(term, max(have, USER_FREQ if strong else 2_000))
        self.tokenizer = tk
        # Fast path: a text in which no risk term occurs even as a substring and no risk pattern
        # matches cannot produce a hit, so jieba is skipped (exact, not an approximation).
        cands = [
            t
            for t, e in self.terms.items()
            if e.weight > 0 and not e.tags & {"hyperbole", "neutral"}
        ]
        self._candidates = re.compile(
            "|".join(map(re.escape, sorted(cands, key=len, reverse=True)))
        )
        # Only patterns whose first character occurs in a text are run on it (exact).
        self._pindex = PatternIndex([p.regex for p in self.patterns])
        # The shortcut only asks whether a pattern that weighs anything matches: its own index.
        self._weighted_rx = [p.regex for p in self.patterns if p.entry.weight > 0]
        self._windex = PatternIndex(self._weighted_rx)
        forget_parses()
        # For stage-2 raises with no rule hit: is the text about another child? (我同桌…)
        peers = sorted(
            (t for t, e in self.terms.items() if "peer" in e.tags), key=len, reverse=True
        )
        self._peer_rx = re.compile("|".join(map(re.escape, peers))) if peers else None
        self.analyse = lru_cache(maxsize=16_384)(self._analyse)

    # ---------------------------------------------------------------- one text
    def _analyse(self, text: str) -> Analysis:
        if len(text) > WINDOW:
            return self._analyse_long(text)
        norm = self.normalise(text)
        return self._analyse_norm(text, norm)

    def _analyse_long(self, text: str) -> Analysis:
        parts = []
        step = WINDOW - OVERLAP
        for off in range(0, max(len(text) - OVERLAP, 1), step):
            part = self.analyse(text[off : off + WINDOW])
            parts.append((off, part))
        hits: dict[tuple[int, int, str], Hit] = {}
        for off, part in parts:
            for h in part.hits:
                if h.end == 0 and h.start == 0 and h.rule.startswith("combo:"):
                    key = (off, off, h.rule)
                    hits[key] = h
                    continue
                moved = Hit(h.text, h.start + off, h.end + off, h.category, h.weight, h.rule)
                hits.setdefault((moved.start, moved.end, moved.rule), moved)
        level = max((p.level for _, p in parts), default=Level.NONE)
        cats = _order_categories({c: p.level for _, p in parts for c in p.categories})
        subjects = [p.subject for _, p in parts]
        subject = "self" if "self" in subjects else "other" if "other" in subjects else "none"
        return Analysis(
            level,
            cats,
            subject,
            tuple(sorted(hits.values(), key=lambda h: (h.start, h.end))),
            frozenset().union(*(p.signals for _, p in parts)),
            tuple(x for _, p in parts for x in p.signal_text),
            all(p.capped for _, p in parts),
        )

    def _analyse_norm(self, text: str, norm: Normalised) -> Analysis:
        s = norm.text
        if not s.strip() or (
            self._candidates.search(s) is None
            and next(  # the first weighted pattern that matches, looped in C
                filter(
                    None,
                    map(
                        methodcaller("search", s),
                        [self._weighted_rx[i] for i in self._windex.candidates(s)],
                    ),
                ),
                None,
            )
            is None
        ):
            raised = self._second_opinion(text, norm, Level.NONE, False)
            if raised is None:
                return Analysis(Level.NONE, (), "none", (), frozenset(), (), False)
            level, hit = raised
            subject = self._subject_without_hits(s)
            return Analysis(level, (hit.category,), subject, (hit,), frozenset(), (), False)
        patterns = [self.patterns[i] for i in self._pindex.candidates(s)]
        tokens = self._tokens(s)
        tok_at = [0] * (len(s) + 1)  # character -> index of the token containing it
        for idx, (_w, a, b) in enumerate(tokens):
            for k in range(a, b):
                tok_at[k] = idx
        clause = _clauses(s, norm.breaks)
        masks: list[tuple[int, int]] = []
        matches: list[_Match] = []
        mod: dict[str, list[tuple[int, int]]] = {}
        for w, a, b in tokens:
            e = self.terms.get(w)
            if e is None:
                continue
            if w.isascii() and (
                (a > 0 and s[a - 1] in _WORD_CHARS) or (b < len(s) and s[b] in _WORD_CHARS)
            ):
                continue  # jieba cut an English word on a lexicon term: "emo" in "remote"
            if e.tags & {"hyperbole", "neutral"}:
                masks.append((a, b))
            elif e.category == NO_CATEGORY and e.weight == 0:
                for t in e.tags:
                    mod.setdefault(t, []).append((a, b))
            elif w.endswith("我") and a > 0 and s[a - 1] == "被":
                continue  # 被|打了我一定…: the 我 starts the next clause; passive_hit covers it
            elif _me_elsewhere(s, a, b, norm.breaks):
                continue
            else:
                matches.append(_Match(a, b, e, f"lexicon:{w}"))
        clauses = _segments(len(s), norm.breaks)
        for p in patterns:
            if "hyperbole" in p.entry.tags:
                # Idiom is read inside one clause (not across "累 想死"): matched clause by
                # clause, so a longer match across a break cannot hide a shorter one within.
                masks += [
                    rm.span()
                    for x, y in clauses
                    for rm in p.regex.finditer(s, x, y)
                    if rm.end() > rm.start()
                ]
                continue
            for rm in p.regex.finditer(s):
                a, b = rm.span()
                if b <= a:
                    continue
                if p.entry.category == NO_CATEGORY and p.entry.weight == 0:
                    for t in p.entry.tags:
                        mod.setdefault(t, []).append((a, b))
                elif not _me_elsewhere(s, a, b, norm.breaks):
                    matches.append(_Match(a, b, p.entry, f"pattern:{p.entry.name}"))
        if masks:
            # A mask hides what it overlaps, not a longer hit around it (把自己|饿死|: the
            # hyperbole 饿死 inside a pattern that reads the whole phrase).
            matches = [
                m
                for m in matches
                if not any(
                    m.start < y
                    and x < m.end
                    and not (m.start <= x and y <= m.end and m.end - m.start > y - x)
                    for x, y in masks
                )
            ]
        negs = {a for a, _b in mod.get("neg", ())}
        past_clauses = {clause[a] for a, _b in mod.get("past", ())}
        latin = HAS_LATIN.search(s) is not None
        for m in matches:
            m.negated = self._negated(m, tokens, tok_at, negs, clause)
            if clause[m.start] in past_clauses and not _ongoing(s, clause, m.start):
                m.past = True
            m.subject = self._subject(m, tokens, tok_at, clause)
        # Weak resolution cues (不再, 再也没有) resolve only what is in their own clause
        # ("他再也没有打我"), not a whole text ("不再为人就太好了", "再也没有醒来").
        for a, b in mod.get("resolved_local", ()):
            for m in matches:
                if clause[m.start] == clause[a] and not (m.start <= a and b <= m.end):
                    m.past = True  # a cue inside the hit is the hit's own wording (不再为人)
        _anchor(matches, tokens, mod, s, clause)
        if latin:  # English hits: words and sentences, not jieba tokens and 我
            en = [m for m in matches if english.is_english(s, m.start, m.end)]
            for m in en:
                english.scope(s, m, m.entry.tags)
            if en:
                named = [
                    m.entry.category != NO_CATEGORY or "self_reveal" in m.entry.tags for m in en
                ]
                english.settle_subjects(s, en, named)
        return self._decide(text, norm, matches, mod, masks)

    def _subject_without_hits(self, s: str) -> str:
        """'other' when another child is named and the writer is not the one hurt, else 'self'."""
        if self._peer_rx is None or not self._peer_rx.search(s):
            return "self"
        return "self" if _WRITER_HURT.search(s) else "other"

    def _second_opinion(
        self,
        text: str,
        norm: Normalised,
        level: Level,
        suicide_talk: bool,
        masked: Sequence[tuple[int, int]] = (),
        named: str | None = None,
    ) -> tuple[Level, Hit] | None:
        """Stage 2 may raise: harm happening now to imminent; a child's message that reads like
        harm needing a human, or a tree-hole text with a plan emerging, to urgent; one that only
        reads like distress to routine. None when it has nothing to add."""
        if self.stage2 is None or level >= Level.IMMINENT:
            return None
        s = norm.text
        if len(s) < STAGE2_MIN_CHARS or len(content(s)) < STAGE2_MIN_CHARS:
            return None
        gate = self._stage2_gate
        may_call = gate == "none" or (level >= Level.ROUTINE if gate == "rules" else suicide_talk)
        # Idiom the rules recognised (按在地上摩擦, 笑死) is blanked for the model, which would
        # otherwise read its words as harm.
        seen = _blank(s, masked) if masked else s
        sc = self.stage2.score(seen)
        m = self.stage2
        if level == Level.URGENT or sc.harm >= m.t_harm:
            # Harm, found by the rules or by the harm head: is it happening now?
            if sc.imminent >= m.t_imminent:
                new, p, head = Level.IMMINENT, sc.imminent, "imminent"
            elif level == Level.URGENT:
                return None
            else:
                new, p, head = Level.URGENT, sc.harm, "harm"
        elif may_call and sc.distress >= m.t_distress and sc.risk >= m.t_risk:
            new, p, head = Level.URGENT, sc.risk, "risk"
        elif level == Level.NONE and sc.distress >= m.t_concern:
            new, p, head = Level.ROUTINE, sc.distress, "distress"
        else:
            return None
        # the category: the rules' own for "now", the model's for harm it alone found, suicide
        # for the tree-hole heads (they only ever see suicide talk)
        fixed = named if head == "imminent" and named else None
        if head not in ("harm", "imminent"):
            fixed = rules.SUICIDE
        cat, gram = m.explain(seen, head, category=fixed is None)
        cat = fixed or cat
        # The hit points at the n-gram that weighed most, so a volunteer sees what the model saw.
        i = s.find(gram) if gram else -1
        o0, o1 = norm.span(i, i + len(gram)) if i >= 0 else (0, len(text))
        return new, Hit(text[o0:o1], o0, o1, cat, round(p, 3), f"stage2:{head}:p={p:.2f}")

    def _tokens(self, s: str) -> list[tuple[str, int, int]]:
        out = []
        pos = 0
        for w in self.tokenizer.cut(s, HMM=False):
            out.append((w, pos, pos + len(w)))
            pos += len(w)
        return out

    def _negated(
        self,
        m: _Match,
        tokens: list[tuple[str, int, int]],
        tok_at: list[int],
        negs: set[int],
        clause: list[int],
    ) -> bool:
        """A negation token before the hit, with only filler words between (我没想过自杀)."""
        if not negs or m.entry.tags & {"neg"}:
            return False
        i = tok_at[m.start] - 1
        steps = 0
        while i >= 0 and steps < 4:
            w, a, _b = tokens[i]
            if clause[a] != clause[m.start]:
                return False
            if a in negs:
                # "没有跳下去" is an aborted attempt, not reassurance: keep methods
                return not (w in ("没", "没有") and "method" in m.entry.tags)
            if w not in NEG_SKIP:
                return False
            i -= 1
            steps += 1
        return False

    def _subject(
        self, m: _Match, tokens: list[tuple[str, int, int]], tok_at: list[int], clause: list[int]
    ) -> str:
        """'other' when the clause is about another child (我同桌被她爸打), else 'self'."""
        c = clause[m.start]
        first = tok_at[m.start]
        last = tok_at[max(m.end - 1, m.start)]
        hit_text = "".join(w for w, _a, _b in tokens[first : last + 1])
        after = tokens[last + 1][0] if last + 1 < len(tokens) else ""
        if "我" in hit_text:
            peer = self.terms.get(after)
            return "other" if peer is not None and "peer" in peer.tags else "self"
        has_first = has_peer = has_third = False
        clause_toks = [(k, t) for k, t in enumerate(tokens) if clause[t[1]] == c]
        for k, (w, _a, _b) in clause_toks:
            e = self.terms.get(w)
            if w in FIRST_PERSON:
                nxt = tokens[k + 1][0] if k + 1 < len(tokens) else ""
                nxt2 = tokens[k + 2][0] if k + 2 < len(tokens) else ""
                pe = self.terms.get(nxt) or (self.terms.get(nxt2) if nxt == "的" else None)
                if pe is not None and "peer" in pe.tags:
                    has_peer = True
                else:
                    has_first = True
            elif e is not None and "peer" in e.tags:
                has_peer = True
            elif w in THIRD_PERSON:
                has_third = True
        if has_first and not (
            has_peer
            and "我们" in hit_text + "".join(w for _k, (w, _a, _b) in clause_toks)
            and "我" not in "".join(w for _k, (w, _a, _b) in clause_toks).replace("我们", "")
        ):
            return "self"
        if has_peer or has_third:
            return "other"
        return "self"  # children drop the subject: 又被打了 is about the writer

    # ---------------------------------------------------------------- decision
    def _decide(
        self,
        text: str,
        norm: Normalised,
        matches: list[_Match],
        mod: dict[str, Any],
        masks: Sequence[tuple[int, int]] = (),
    ) -> Analysis:
        s = norm.text
        active: set[str] = set()
        ctx_cat: dict[str, Level] = {}
        for m in matches:
            if not m.active:
                continue
            active |= m.entry.signals
            if m.entry.category != NO_CATEGORY:
                ctx_cat[m.entry.category] = max(ctx_cat.get(m.entry.category, Level.NONE), m.floor)
        level = Level.NONE
        cat_level: dict[str, Level] = {}
        for m in matches:
            cat = _hit_category(m, ctx_cat)
            if m.floor > Level.NONE and cat:
                cat_level[cat] = max(cat_level.get(cat, Level.NONE), m.floor)
            level = max(level, m.floor)
        combo_hits: list[Hit] = []
        in_combo: set[int] = set()
        for r, used in _local_rules(matches, _near_window(s)):
            in_combo |= {id(m) for m in used}
            a = min(m.start for m in used)
            b = max(m.end for m in used)
            o0, o1 = norm.span(a, b)
            combo_hits.append(Hit(text[o0:o1], o0, o1, r.category, 3.0, f"combo:{r.name}"))
            level = max(level, r.level)
            cat_level[r.category] = max(cat_level.get(r.category, Level.NONE), r.level)
        # Caps: a resolved past ("以前被打过 现在好了") or a news/class report with no "me"
        # is recorded (routine) but does not call a human.
        has_self = any(
            m.subject == "self" and (_first_person_near(s) or "pact" in m.entry.tags)
            for m in matches
        )
        capped = False
        # resolution that still holds ("以为都过去了 今晚他又要来" does not resolve anything)
        resolving = bool(mod.get("resolved")) and not active & {"now", "tonight", "time"}
        if level > Level.ROUTINE:
            report = bool(mod.get("report")) and not has_self
            if resolving or report:
                level = Level.ROUTINE
                cat_level = {c: min(v, Level.ROUTINE) for c, v in cat_level.items()}
                capped = True
        hits: list[Hit] = []
        for m in matches:
            if m.entry.weight <= 0 or (m.entry.floor == Level.NONE and id(m) not in in_combo):
                continue
            o0, o1 = norm.span(m.start, m.end)
            rule = m.rule + (":negated" if m.negated else "") + (":past" if m.past else "")
            rule += ":unanchored" if m.unanchored else ""
            cat = _hit_category(m, ctx_cat) or "context"
            hits.append(Hit(text[o0:o1], o0, o1, cat, m.entry.weight, rule))
        hits = _dedupe(hits) + combo_hits
        if not capped and not mod.get("report"):
            sui = any(
                m.active
                and m.entry.category == rules.SUICIDE
                and m.floor >= Level.ROUTINE
                and m.entry.tags & rules.S_CTX
                for m in matches
            )
            # stage 2 does not read what the rules masked as idiom; "now" raises the harm the
            # rules already named, not a category of its own
            named = max(cat_level, key=cat_level.__getitem__) if cat_level else None
            raised = self._second_opinion(text, norm, level, sui, masks, named)
            if raised is not None:
                level, hit = raised
                hits.append(hit)
                cat_level[hit.category] = max(cat_level.get(hit.category, Level.NONE), level)
        cats = _order_categories({c: v for c, v in cat_level.items() if v > Level.NONE})
        if not cats:
            subject = "none"
        else:
            subjects = {m.subject for m in matches if m.floor > Level.NONE or id(m) in in_combo}
            subject = (
                "self"
                if "self" in subjects
                else "other"
                if "other" in subjects
                else self._subject_without_hits(s)  # only stage 2 found something
            )
        sig_text = tuple(
            (t, s[m.start : m.end], _hit_category(m, ctx_cat) or "")
            for m in matches
            if m.active
            for t in m.entry.signals
        )
        return Analysis(
            level,
            cats,
            subject,
            tuple(hits),
            # A capped or resolving message ("已经一年多没有了 现在…") lends no signal to the
            # conversation: its 现在 must not make an old cut "self-harm now".
            frozenset(active) if not (capped or resolving) else frozenset(),
            sig_text if not (capped or resolving) else (),
            capped,
            subject if subject != "none" else _majority([m.subject for m in matches if m.active]),
        )

    # ---------------------------------------------------------------- conversation
    def assess(self, text: str, history: Sequence[str] = ()) -> Assessment:
        """Assess text in the context of the conversation's earlier messages."""
        cur = self.analyse(text)
        past = [self.analyse(h) for h in list(history)[-MAX_HISTORY:]]
        older = (
            [self.analyse(h) for h in list(history)[:-MAX_HISTORY]]
            if len(history) > MAX_HISTORY
            else []
        )
        level = cur.level
        cat_level = dict.fromkeys(cur.categories, cur.level)
        hits = list(cur.hits)
        for a in past + older:
            level = max(level, a.level)  # the level of a conversation never drops
            for c in a.categories:
                cat_level[c] = max(cat_level.get(c, Level.NONE), a.level)
        if past and (cur.signals or any(a.signals for a in past)):
            signals = set(cur.signals).union(*(a.signals for a in past))
            seen = set(rules.fired(cur.signals)).union(*(rules.fired(a.signals) for a in past))
            for r in rules.fired(signals):
                if r in seen:
                    continue
                phrases = [
                    p
                    for a in [*past, cur]
                    for (t, p, _c) in a.signal_text
                    if any(t in g for g in r.groups)
                ]
                hits.append(
                    Hit(
                        "|".join(dict.fromkeys(phrases)), 0, 0, r.category, 3.0, f"history:{r.name}"
                    )
                )
                level = max(level, r.level)
                cat_level[r.category] = max(cat_level.get(r.category, Level.NONE), r.level)
        subject = cur.subject
        if subject == "none" and level > Level.NONE:
            for a in [cur, *reversed(past)]:
                if a.subject_hint != "none":
                    subject = a.subject_hint
                    break
        return Assessment(level, _order_categories(cat_level), subject, tuple(hits))


def _anchor(
    matches: list[_Match],
    tokens: list[tuple[str, int, int]],
    mod: dict[str, Any],
    s: str,
    clause: list[int],
) -> None:
    """Mark hits that talk about adults or society rather than a child in this chat
    (gender debates about 强奸, news of a 男子跳楼): they are recorded, not escalated."""
    has_first = "我" in s or "俺" in s
    has_peer = bool(mod.get("peer"))
    # Fiction / news / class right before a mention ("小说叫做遗书", "新闻说一名男子跳楼"):
    # recorded, not escalated, unless the writer speaks about themself in between.
    for m in matches:
        if "intent" in m.entry.tags or m.entry.floor <= Level.ROUTINE:
            continue
        for _a, b in mod.get("report", ()):
            if b <= m.start and m.start - b <= 12 and "我" not in s[b : m.start]:
                m.unanchored = True
    # "如果我被打…" / "就算被强奸…": a hypothetical in the same clause, before the hit.
    for a, _b in mod.get("hypo", ()):
        for m in matches:
            if (
                m.entry.category not in (rules.SUICIDE, NO_CATEGORY)
                and clause[a] == clause[m.start]
                and a < m.start
                and "我" not in s[m.start : m.end]  # 要是不听话他就打我: a habit, not a what-if
            ):
                m.unanchored = True
    has_adult = bool(mod.get("adult")) or bool(mod.get("report"))
    has_third = any(w in THIRD_PERSON for w, _a, _b in tokens)
    speaks = _SPEAKER.search(s) is not None  # "我" as a person in the story, not "我觉得"
    # A bare 女生 / 孩子 in a debate means people in general ("女生被性侵还要被骂"); it names a
    # child in this chat only with a determiner (我们班一个女生, 隔壁的孩子, 有个男生).
    generic_peers = set(mod.get("generic_peer", ()))
    peers = [
        (a, b)
        for a, b in mod.get("peer", ())
        if (a, b) not in generic_peers or _DETERMINER.search(s[max(0, a - 4) : a])
    ]
    for m in matches:
        if m.entry.floor <= Level.ROUTINE or "我" in s[m.start : m.end]:
            continue
        if "pact" in m.entry.tags:
            continue  # recruiting a partner is about the writer, whoever else is named
        if m.entry.category in (rules.SUICIDE, NO_CATEGORY):
            if not (has_first or has_peer):
                m.unanchored = has_adult
            continue
        # Abuse words: the child (or another child) must be in the same clause, else it is
        # talk about adults, society or the news (COLD-style debates about 强奸, 家暴).
        c = clause[m.start]
        ctext = "".join(ch for i, ch in enumerate(s) if clause[i] == c)
        # A clause that opens with 被 and names nobody before it is about the writer (被他们关在…)
        if (
            _SPEAKER.search(ctext)
            or ctext.startswith("被")
            or any(clause[a] == c for a, _b in peers)
        ):
            continue
        if "topic" in m.entry.tags:
            m.unanchored = True
        else:
            # generic people (这种人, 那些人) mark an opinion about others, for abuse words only
            generic = has_adult or bool(mod.get("generic"))
            m.unanchored = generic or (not speaks and (has_third or has_first))
    # Last, so that nothing above clears it: "just kidding" caps non-suicide threats.
    # "说是开玩笑": the bullies' excuse, not the writer taking it back
    jokes = [a for a, _b in mod.get("joke", ()) if not _EXCUSE.search(s[max(0, a - 3) : a])]
    if jokes:
        for m in matches:
            if m.entry.category not in (rules.SUICIDE, NO_CATEGORY):
                m.unanchored = True
    # "让我扫码 我没扫" / "我把他删了": online harm the child refused is recorded, unless it
    # came with a threat or exposure (pay or we post) or was a request for nude images, which is
    # sexual solicitation of a child whether or not she sent any.
    if mod.get("refused") and not any(m.entry.tags & _NOT_UNDONE for m in matches):
        for m in matches:
            if m.entry.category == rules.ONLINE:
                m.unanchored = True


_NOT_UNDONE = frozenset({"threat", "expose", "nude"})  # what a child's refusal does not undo

# After a hit ending in 我, a classmate the 我 owns (我同桌): the hit is not on the writer, and
# 我要杀了我同桌 is a child's venting. 我们 includes the writer and 我妈 is a threat in the home:
# both still count.
_POSSESSED = frozenset({"同桌", "同学", "朋友", "闺蜜", "室友", "班上", "班里"})


def _me_elsewhere(s: str, a: int, b: int, breaks: frozenset[int]) -> bool:
    """True when a lexicon or pattern hit ends on a 我 that is not the one hurt: the 我 starts the
    next clause ("都杀了 我赢了", a space removed before it), or owns a classmate written straight
    after it (要杀了我同桌; "要杀了我 同学都看见了" has a break there and still counts)."""
    if b - a < 2 or s[b - 1] != "我":
        return False
    return b - 1 in breaks or (b not in breaks and s[b : b + 2] in _POSSESSED)


# The writer as the one something is done to: 我被…, …打我, 我的脸… (then a peer named is a witness).
_WRITER_HURT = re.compile(r"我(被|的(头|脸|手|腿|身|照片|视频))|[打骂摸踢踹掐拍亲逼让叫要]我")


def _segments(n: int, breaks: frozenset[int]) -> list[tuple[int, int]]:
    """The clauses of a text of length n, as (start, end), split where a break begins one."""
    cuts = [0, *sorted(k for k in breaks if 0 < k < n), n]
    return [(a, b) for a, b in pairwise(cuts) if b > a]


def _blank(s: str, spans: Sequence[tuple[int, int]]) -> str:
    """s with the given spans replaced by spaces (same length, so offsets still hold)."""
    chars = list(s)
    for a, b in spans:
        chars[a:b] = " " * (b - a)
    return "".join(chars)


# "说是开玩笑" is the bullies' excuse, "我没开玩笑" insists: neither takes anything back.
_EXCUSE = re.compile(r"(说|说是|都说|以为|当|没|没有|不是|别|不)(是)?(在)?(跟你)?$")

_DETERMINER = re.compile(r"(个|班|的|我|隔壁|邻居|这|那|她|他)$")

# "我" as a participant; "我觉得 / 我认为 ..." is an opinion about others.
_SPEAKER = re.compile(r"[我俺](?!(觉得|认为|支持|反对|看来|相信|建议|个人|是说|想说|说|感觉))")


NEAR = 25  # signals combine inside one message only when this close (normalised characters)
NEAR_LATIN = 90  # an English clause takes three to four times the characters of a Chinese one


def _near_window(s: str) -> int:
    """How close signals must be to combine: wider when the message is mostly English."""
    if HAS_LATIN.search(s) is None:  # most messages: no Latin letter at all
        return NEAR
    return NEAR_LATIN if len(HAS_LATIN.findall(s)) > 2 * len(content(s)) else NEAR


def _local_rules(
    matches: list[_Match], window: int = NEAR
) -> list[tuple[rules.Rule, list[_Match]]]:
    """Rules fired by signals near each other, with the matches that satisfied them."""
    act = [m for m in matches if m.active]
    out: dict[str, tuple[rules.Rule, list[_Match]]] = {}
    for anchor in act:
        near = [m for m in act if m.start < anchor.end + window and anchor.start - window < m.end]
        tags: set[str] = set()
        for m in near:
            tags |= m.entry.signals
        for r in rules.fired(tags):
            if r.name in out:
                continue
            used = [m for m in near if any(g & m.entry.signals for g in r.groups)]
            if len(used) < 2 and english.is_pattern(used[0].entry.name):
                continue  # one English phrase is not a combination ("i am standing at the window")
            out[r.name] = (r, used)
    return list(out.values())


def _majority(subjects: list[str]) -> str:
    if not subjects:
        return "none"
    return "self" if "self" in subjects else "other"


def _hit_category(m: _Match, ctx: dict[str, Level]) -> str:
    if m.entry.category != NO_CATEGORY:
        return m.entry.category
    if ctx:
        return max(ctx.items(), key=lambda kv: (kv[1], -CATEGORIES.index(kv[0])))[0]
    for t in sorted(m.entry.tags):
        if t in rules.DEFAULT_CATEGORY:
            return rules.DEFAULT_CATEGORY[t]
    return ""


def _order_categories(cat_level: dict[str, Level]) -> tuple[str, ...]:
    """Worst first, then the order of CATEGORIES."""
    cats = [c for c in cat_level if c in CATEGORIES]
    return tuple(sorted(cats, key=lambda c: (-cat_level[c], CATEGORIES.index(c))))


def _dedupe(hits: list[Hit]) -> list[Hit]:
    """Drop a hit wholly inside another hit of the same category (想死 inside 好想死)."""
    out = []
    seen: set[tuple[int, int, str]] = set()
    for h in hits:
        if (h.start, h.end, h.category) in seen:
            continue
        seen.add((h.start, h.end, h.category))
        inside = any(
            o is not h
            and o.category == h.category
            and o.start <= h.start
            and h.end <= o.end
            and (o.end - o.start) > (h.end - h.start)
            for o in hits
        )
        if not inside:
            out.append(h)
    return out


def _clauses(s: str, breaks: frozenset[int]) -> list[int]:
    out = []
    c = 0
    for i, ch in enumerate(s):
        if i in breaks or ch in _CLAUSE_PUNCT or (ch.isspace() and not _between_words(s, i)):
            c += 1
        out.append(c)
    out.append(c + 1)
    return out


def _between_words(s: str, i: int) -> bool:
    """A space between two English words, which does not end a clause the way a space between
    Chinese phrases does ("i want to die" is one clause; "累 想死" two)."""
    return 0 < i < len(s) - 1 and s[i - 1] in _WORD_CHARS and s[i + 1] in _WORD_CHARS


_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789'")


def _ongoing(s: str, clause: list[int], pos: int) -> bool:
    c = clause[pos]
    text = "".join(ch for i, ch in enumerate(s) if clause[i] == c)
    return any(w in text for w in ONGOING)


def _first_person_near(s: str) -> bool:
    return "我" in s or "俺" in s or (HAS_LATIN.search(s) is not None and english.first_person(s))


def _cache_dir() -> str:
    """./var under the working directory (created), else a private temp dir."""
    var = Path.cwd() / "var"
    try:
        var.mkdir(parents=True, exist_ok=True)
        probe = var / ".nlp-write-probe"
        probe.write_text("ok")
        probe.unlink()
        return str(var)
    except OSError:
        d = Path(tempfile.gettempdir()) / f"qingting-jieba-{os.getuid()}"
        d.mkdir(parents=True, exist_ok=True)
        return str(d)


_lock = threading.Lock()
_detector: Detector | None = None


def get() -> Detector:
    """The process-wide detector, built on first use (thread-safe, once)."""
    global _detector
    if _detector is None:
        with _lock:
            if _detector is None:
                _detector = Detector()
                # The lexicon, patterns and model tables live as long as the process: keep
                # them out of the garbage collector's full scans (a measurable tail otherwise).
                gc.freeze()
    return _detector
