"""Scope for hits in English: negation, past, who it happened to, and reports.

The Chinese scope in detector.py reads jieba tokens and 我; an English hit needs words and
sentences instead. Text reaching here is normalised (lower case, english.tsv applied: "don't" is
"do not", "im" is "i am"), so the cues below are written once, in canonical spelling."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from nlp.normalize import HAS_LATIN
from nlp.types import Level

# A sentence ends at . ! ? ; a line break or Chinese sentence punctuation; a comma does not end
# one ("i used to cut, but i stopped" is one thought).
_SENTENCE_END = re.compile(r"[.!?;\n。！？；]")

# A negation right before the hit, with only words like "really / ever / want to" between:
# "i would never kill myself", "i do not want to die", "i am not going to hurt myself".
_FILLER = (
    r"i|really|ever|even|would|will|do|did|want|to|going|gonna|try|trying|think|thought|about|"
    r"of|actually|plan|planning|be|been|that|it|so|feel|felt|like|wanna|again|seriously|"
    r"honestly|literally|mean|am|was|is"
)
_NEG_BEFORE = re.compile(rf"\b(not|never)\b(?:\s+(?:{_FILLER})\b)*\s*$")
# "if i do not video call…" is a condition, not a denial
_IF_NOT = re.compile(r"\b(if|unless) \w+ (do |does |did |will |would )?not\b(?:\s+\w+){0,3}\s*$")

# The past, unless something says it is still going on.
_PAST = re.compile(
    r"\bused to\b|\bwhen i (was|lived) (in )?(little|small|young|younger|a kid|a baby|primary|"
    r"elementary|kindergarten|grade \w+|year \w+|p\d|k\d|\d+|with)\b|\byears ago\b|\b(a|one) (long time|few years) ago\b|"
    r"\blast year\b|\bback then\b|\bin the past\b|(^|[.!?] )before (my|he|she|they|baba|mama|papa|"
    r"daddy|mummy|mum|mom|dad)\b|\b(hit|beat|touch|touched) me before\b|\bbefore (the|my parents'?) divorce\b|"
    r"\bwhen i (had|was sick|was ill)\b|"
    r"\bin (primary|elementary|middle) school\b|\bin 20\d\d\b|"
    r"\b(\d+|a few|six|three|two) (months|weeks|years) clean\b|\bclean (for|from)\b"
)
_ONGOING = re.compile(
    r"\b(still|again|right now|keeps?|kept|every (day|night|time|week|weekend)|always|tonight|today|"
    r"this (week|morning|evening)|yesterday|last night)\b"
)

# Who the hit is about: the writer, or another child (a friend, a sibling, a classmate).
_ADULT = (
    r"dad|daddy|father|mom|mum|mummy|mommy|mother|stepdad|stepmom|stepfather|stepmother|parents|"
    r"uncle|aunt|auntie|grandpa|grandma|baba|mama|papa|teacher|coach|tutor|boss"
)
_PEER = (
    r"friend|best friend|sister|brother|sis|bro|cousin|classmate|deskmate|roommate|neighbou?r|"
    r"buddy|mate|little sister|little brother|baby sister|baby brother|stepsister|stepbrother|"
    r"teammate|jiejie|meimei|didi|gege"
)
# "my" is the writer unless it owns an adult (my dad hits…) or another child (my sister…).
_SELF_IN_HIT = re.compile(
    rf"\b(i|me|myself|mine)\b|\bmy\b(?!\s+(step)?({_ADULT}|(little |baby |older |big |best )?"
    rf"({_PEER}))\b)(?!\s*$)"
)
_PEER_IN_HIT = re.compile(rf"\bmy (little |baby |older |big |best )?({_PEER})\b")
_OTHER_IN_HIT = re.compile(r"\b(herself|himself|themselves|themself|her|him|his)\b")
_PEER_ANY = re.compile(
    rf"\b(my|our|a|this|one) (\w+ )?({_PEER})\b|\b(a|this|one|the) (girl|boy|kid|child) (in|at|from|"
    r"next door)\b|\b(neighbou?r'?s?|classmate'?s?) (kid|son|daughter|girl|boy)\b"
)
_SUBJECT_WORD = re.compile(
    rf"\b(?P<peer>(my|our|a|this|one|the) (?:\w+ )?(?:{_PEER})|(a|this|one|some|the new) "
    rf"(girl|boy|kid|child|student)\b[^.!?]{{0,20}}\b(in|at|from) (my|our))\b"
    r"|\b(?P<pron>she|he|they)\b|\b(?P<self>i|me|myself)\b"
)
_SELF_AFTER = re.compile(r"^\W*(\w+\W+){0,2}?(me|my|myself)\b")

# Fiction, the news, a class: about nobody in this chat unless the writer speaks of themself.
_REPORT = re.compile(
    r"\b(in|on) the news\b|\bnews (story|report|said)\b|\b(we|they) (learned|learnt|talked|"
    r"read|watched|studied) (about|a)\b|\b(in|for) (health|pshe|biology|history|english|"
    r"psychology) (class|lesson)?\b|\b(in|from) (a|the|this|that) (book|novel|movie|film|show|"
    r"series|song|episode|anime|manga|game|documentary|story)\b|\bthe (character|main character|"
    r"villain|hero|author)\b|\b(essay|project|presentation|debate|song|book|film|movie|poem|"
    r"assignment|homework|story) (is )?(on|about)\b|\b(romeo|juliet|hamlet|ophelia)\b|"
    r"\bis it true that\b|\btiktok word\b"
)


class EnglishMatch(Protocol):
    """What of a detector match the English scope reads and sets."""

    start: int
    end: int
    negated: bool
    past: bool
    subject: str
    unanchored: bool

    @property
    def floor(self) -> Level:
        """The level the hit sets on its own."""
        ...


def settle_subjects(s: str, hits: Sequence[EnglishMatch], named: Sequence[bool]) -> None:
    """Signal-only hits ("rn", "tonight") take the subject of the text's named hits, or of the
    text: another child when one is named in it ("my friend … rn"), else the writer."""
    voters = [m.subject for m, n in zip(hits, named, strict=True) if n]
    fallback = (
        ("self" if "self" in voters else "other")
        if voters
        else ("other" if _PEER_ANY.search(s) else "self")
    )
    for m, n in zip(hits, named, strict=True):
        if not n:
            m.subject = fallback


def is_pattern(name: str) -> bool:
    """An English pattern (patterns_en.tsv names start with "en_" or "en2_"; Chinese ones such
    as end_it_all do not)."""
    return name.startswith(("en_", "en2_"))


def is_english(s: str, start: int, end: int) -> bool:
    """True when the hit is written in Latin letters (an English phrase)."""
    return HAS_LATIN.search(s, start, end) is not None and not any(
        "\u4e00" <= ch <= "\u9fff" for ch in s[start:end]
    )


def sentence(s: str, start: int, end: int) -> tuple[int, int]:
    """The sentence around [start, end)."""
    a = 0
    for m in _SENTENCE_END.finditer(s, 0, start):
        a = m.end()
    m2 = _SENTENCE_END.search(s, end)
    return a, (m2.start() if m2 else len(s))


def first_person(s: str) -> bool:
    """The writer speaks of themself in English (i, me, my, myself)."""
    return _SELF_IN_HIT.search(s) is not None


def scope(s: str, m: EnglishMatch, tags: frozenset[str]) -> None:
    """Set negation, past, subject and report anchoring of one English hit."""
    a, b = sentence(s, m.start, m.end)
    before = s[a : m.start]
    hit = s[m.start : m.end]
    whole = s[a:b]
    # English decides negation itself (the Chinese token scan may have read "not" as a token).
    m.negated = False
    if "neg" not in tags and _NEG_BEFORE.search(before) and not _IF_NOT.search(before):
        # "i did not jump" is an aborted attempt, not reassurance: a method keeps its level
        m.negated = not ("method" in tags and before.rstrip().endswith("did not"))
    if _PAST.search(whole) and not _ONGOING.search(_clause(s, m.start, m.end, a, b)):
        m.past = True
    own = "intent" in tags or "selfharm" in tags
    m.subject = subject(before, hit, s[m.end : m.end + 30], own)
    cue = _REPORT.search(before)
    if cue and m.floor >= Level.URGENT and not first_person(before[cue.end() :] + hit):
        m.unanchored = True


_CLAUSE_END = re.compile(r"[,;]|\bbut\b")


def _clause(s: str, start: int, end: int, a: int, b: int) -> str:
    """The part of the sentence [a, b) around the hit, between commas and "but": "used to hit me
    but he stopped, sometimes i still think about it" keeps "still" out of the hit's clause."""
    lo = a
    for m in _CLAUSE_END.finditer(s, a, start):
        lo = m.end()
    m2 = _CLAUSE_END.search(s, end, b)
    return s[lo : m2.start() if m2 else b]


def subject(before: str, hit: str, after: str = "", own_act: bool = False) -> str:
    """'self' or 'other': the person in the hit, else the person named right after or before it.
    he / she / they make it another child's only for what one does to oneself ("she wants to
    die"); in an abuse report "he" is the one who did it ("he raped me")."""
    peer = _PEER_IN_HIT.search(hit + after[:25])
    if peer is not None and peer.start() < len(hit):
        return "other"  # "hits my | little sister": the hit ends on the owner of another child
    if _SELF_IN_HIT.search(hit):
        return "self"
    if _OTHER_IN_HIT.search(hit):
        return "other"
    if _SELF_AFTER.search(after):
        return "self"  # "he touched | me"
    last = None
    for m in _SUBJECT_WORD.finditer(before):
        last = m
    if last is not None and (last.group("peer") or (own_act and last.group("pron"))):
        return "other"
    return "self"
