"""English as children type it: text-speak, scope (negation, the past, another child, class
talk), everyday exaggeration, and danger now. The service runs in English too; before the fifth
pass "i dont want to be alive anymore" and "i'm standing on the roof" reached nobody."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nlp import assess
from nlp.evaluate import evaluate, read_rows
from nlp.normalize import Normaliser
from nlp.prefilter import TrigramIndex, required_strings
from nlp.types import Level

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def norm() -> Normaliser:
    return Normaliser()


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("im gonna kms rn", "i am going to kill myself right now"),
        ("I don’t wanna be alive", "i do not want to be alive"),  # curly apostrophe
        ("u r ok?", "you are ok?"),
        ("sewer slide tn", "suicide tonight"),
        ("s/h again", "self harm again"),
        ("ill be gone", "i will be gone"),
        ("i feel ill", "i feel ill"),  # "ill" alone is sick
        ("unalive myself", "kill myself"),
        ("grape is my favourite fruit", "grape is my favourite fruit"),
    ],
)
def test_text_speak_is_read_in_one_spelling(norm: Normaliser, written: str, read: str) -> None:
    assert norm(written).text == read


def test_hits_point_into_what_the_child_wrote() -> None:
    text = "ngl im gonna kms tn"
    a = assess(text)
    assert a.level == Level.IMMINENT
    assert any(text[h.start : h.end] == h.text and "kms" in h.text for h in a.hits)


@pytest.mark.parametrize(
    "text",
    [
        "i dont want to be alive anymore",
        "i wish i was never born",
        "everyone would be better off without me",
        "i want disappear. nobody want me",  # second-language English
        "i feel like dying every day",
        "i cut again last night. nobody knows",
        "been hiding my arms with long sleeves even in summer",
        "my dad hits me with his belt when he drinks",
        "my stepdad comes into my room at night",
        "a guy on discord wants me to send pics with no shirt",
        "he said he'll post my nudes unless i pay",
        "they pushed my head into the toilet and filmed it",
        "everyone at school calls me fat and pushes me in the hallway",
        "mum and dad have been gone for a week and theres no food",
        "my parents took me out of school to work in the factory",
        "my uncle gives me beer and makes me deliver stuff",
    ],
)
def test_english_harm_reaches_a_human(text: str) -> None:
    a = assess(text)
    assert a.needs_human, a
    assert a.categories, a


@pytest.mark.parametrize(
    "text",
    [
        "i have pills saved up and im going to take them tonight",
        "i'm standing on the roof",
        "took a bunch of my mums antidepressants like an hour ago",
        "there's a man following me home right now",
        "im scared hes drunk again and banging on my door",
        "my friend said she's going to end it tonight",
        "my friend just posted goodbye on her story and shes not answering",
        "i have the rope. i tied it already",
        "daddy is hitting mummy now and she is screaming",
        "the guy from the game is waiting at my school gate now",
    ],
)
def test_english_danger_now_is_imminent(text: str) -> None:
    assert assess(text).level == Level.IMMINENT, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "this homework is killing me lol",
        "i'm dying to see the new spiderman movie",
        "so bored i could die",
        "my mom will kill me if she sees my grades",
        "my phone died",
        "i killed the boss in minecraft",
        "she cut her hair really short",
        "took 2 panadol for my headache",
        "lol my brother hit me with a pillow",
        "i beat my brother at mahjong!!",
        "i'm locked out of my account lol",
        "goodbye everyone see you tomorrow at school",
        "I don't go to school on Saturday",
        "I hurt my leg at football",
        "what happens if i tell u something, do u call the police?",
        "we had a knife skills class and i cut the onion perfectly",
        "my parents won't let me go to the party tonight",
        "my mom is picking me up after school",
    ],
)
def test_english_everyday_stays_below_a_human(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


def test_negation_lowers_but_keeps_a_record() -> None:
    a = assess("i would never kill myself")
    assert a.level == Level.ROUTINE
    assert any(h.rule.endswith(":negated") for h in a.hits)
    assert assess("i do not want to die").level == Level.ROUTINE
    # "do not want to live" is the wish itself, not a negated one
    assert assess("i do not want to live anymore").needs_human


def test_the_past_is_recorded_unless_it_still_happens() -> None:
    assert assess("my dad used to hit me but he stopped after the divorce").level == (Level.ROUTINE)
    assert assess("when i was in p3 my teacher hit us with a ruler").level == Level.ROUTINE
    assert assess("my dad used to hit me and he still hits me every day").needs_human


def test_another_child_is_the_subject() -> None:
    a = assess("my friend said she wants to kill herself")
    assert a.needs_human and a.subject == "other"
    b = assess("my little sister has bruises on her back, my dad does it when hes angry")
    assert b.needs_human and b.subject == "other", b
    assert assess("he said he will kill me if i tell anyone").subject == "self"


def test_class_talk_is_recorded_not_escalated() -> None:
    a = assess("we learned about suicide in pshe today")
    assert not a.needs_human
    assert assess("we learned about suicide in pshe and i think i want to die").needs_human


def test_a_threat_to_keep_a_secret_is_no_idiom() -> None:
    assert not assess("my mom will kill me if she finds out i failed").needs_human
    assert assess("he said he will kill me if i tell anyone").needs_human


def test_trigram_index_is_exact_on_english_waves() -> None:
    """The word gate for English patterns never skips a pattern that matches."""
    from nlp import detector

    d = detector.get()
    en = [p.regex for p in d.patterns if p.entry.name.startswith("en_")]
    index = TrigramIndex(en)
    texts = [
        d.normalise(t).text
        for f in ("dev_wave16.jsonl", "heldout_wave17.jsonl")
        for r in read_rows(DATA / f)
        for t in (*r.history, r.text)
    ]
    for s in texts:
        matching = {i for i, rx in enumerate(en) if rx.search(s)}
        assert matching <= set(index.candidates(s)), s


def test_required_strings_of_simple_shapes() -> None:
    assert required_strings(re.compile(r"\bkill myself\b")) == frozenset({"kill myself"})
    assert required_strings(re.compile(r"(hits?|beats?) me")) == frozenset({"hit", "beat"})
    assert required_strings(re.compile(r"\b(hit|beat)s? (him|her)")) == {"hit", "beat"}
    assert required_strings(re.compile(r"(a|b?)c")) == frozenset({"c"})
    assert required_strings(re.compile(r"\w+")) is None


def test_english_dev_wave_floors() -> None:
    """Wave 16 (English, 320 rows) was measured before use: recall 0.20 and precision 0.88 with
    the fourth pass's few English patterns, 0.46 / 0.89 with this pass's English layer written
    before reading it; the rules were then tuned on it."""
    rep = evaluate(read_rows(DATA / "dev_wave16.jsonl"), assess)
    p, r, _f = rep.prf()
    assert r >= 0.95, rep.misses
    assert p >= 0.95, rep.false_alarms
    assert rep.imminent_to_human >= 0.95 * rep.imminent_rows


def test_english_held_out_wave_floors() -> None:
    """Wave 17 (English, 220 rows, a third about another child) is never read: recall 0.35 with
    the fourth pass, 0.56 with the English layer before wave 16 was read, 0.68 after."""
    rep = evaluate(read_rows(DATA / "heldout_wave17.jsonl"), assess)
    p, r, _f = rep.prf()
    assert len(rep.misses) + rep.tp >= 90
    assert r >= 0.64
    assert p >= 0.78
    assert rep.imminent_to_human >= 0.7 * rep.imminent_rows
