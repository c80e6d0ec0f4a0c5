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
        "i'm standing on the roof right now",
        "im at the top of the carpark. i cant do this anymore",
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


def test_standing_on_a_roof_reaches_a_human_and_now_makes_it_imminent() -> None:
    assert assess("i'm standing on the roof").level == Level.URGENT
    assert not assess("i'm on the roof with my friends watching fireworks").needs_human
    assert not assess("i'm sitting on the edge of my bed crying").needs_human


# Found by a review of this pass (about 840 probes by a separate reviewer, none from the waves).
@pytest.mark.parametrize(
    "text",
    [
        "my stepdad said he will kill me when he gets home",
        "i overdosed",
        "im gonna od tonight",
        "i'm going to off myself tonight",
        "i'm ending it tonight",
        "i have the pills in my hand right now",
        "i'm holding the knife to my wrist right now",
        "i can't breathe",
        "our house is on fire",
        "a stranger grabbed me and pulled me into his car",
        "some men are chasing me",
        "im hiding in the closet, he's looking for me",
        "my dad is drunk again and hes coming to my room",
        "he said he's coming back tonight to hurt me",
        "he says he'll post my pics by tonight if i dont send more",
        "i took drugs and my heart is racing",
    ],
)
def test_review_danger_now_is_imminent(text: str) -> None:
    assert assess(text).level == Level.IMMINENT, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "i want to go to sleep and never wake up",
        "my arm is bleeding and it won't stop",
        "im going to throw myself off the balcony",
        "i have nothing to live for",
        "i want to kill my self",
        "i wnt to die",
        "i dont even want to live anymore",
        "i cant stop cutting",
        "my sister wants to die",
        "my best friend is cutting herself",
        "he punched me in the face",
        "i got beaten by my dad",
        "he put his hand in my pants",
        "my uncle SA'd me",
        "someone is blackmailing me with my photos",
        "he's 30 and i'm 13 and he says he loves me",
        "they posted an embarrassing video of me and everyone is laughing",
        "the older kids locked me in the toilet",
        "my parents dont feed me",
    ],
)
def test_review_harm_reaches_a_human(text: str) -> None:
    assert assess(text).needs_human, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "i'm standing on the bridge waiting for the bus",
        "i tied a knot in scouts today",
        "this is my last message for today, goodnight",
        "my mom is at the mall and i'm playing roblox",
        "this guy keeps following me on insta right now",
        "i took 20 minutes to find my meds",
        "my brother does not wake up before 10 on weekends",
        "this shoe is hurting my foot",
        "did you see my last message?",
        "i wrote a letter to santa",
        "i cut myself while cooking",
        "i took my pills",
        "my dad hit me up on whatsapp",
        "i will beat you at chess",
        "my boyfriend kissed me",
        "mom takes photos of me every birthday",
        "he sent me a pic of his dog",
        "i owe him 5 dollars for lunch",
        "my teacher makes us work in groups",
        "the nurse gave me pills for my headache",
        "i got in the car with my mom",
        "send me the homework or i will tell the teacher",
        "please help me with my homework",
        "she has a blister on her foot",
        "he's such a pedo lol",
        "im going to do it today, im gonna tell my crush",
        "my siblings are fighting again over the remote",
    ],
)
def test_review_everyday_english_stays_below_a_human(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


# Found by a second review (675 probes) after waves 18 and 19: one English phrase may not fire
# a combination rule by itself, and time words of days ("tomorrow") are not hours.
@pytest.mark.parametrize(
    "text",
    [
        "i take the medicine now",
        "i took the panadol for my headache today",
        "i have enough medicine for the trip tomorrow",
        "i used a razor on my legs today for the first time",
        "i jump very far in pe today",
        "i like to sit at the window on the 5th floor and read",
        "we are not going where we planned for holiday",
        "i am on the bus to meet my grandma",
        "my mom texted me she said she is outside",
        "i am in my room, my friend is coming over",
        "i am scared of my math test, my tutor is coming over",
        "i sent my photo to the class group chat today",
        "my friend invited me to come to his house tonight",
        "my dad drive away to work and come back at night",
        "i got my period and there is so much blood",
        "the bus is not moving, traffic is so bad",
        "my dog is chasing me lol",
        "i told my mom where i am going but she is not answering her phone",
        "i am so sleepy, no one is home",
        "my brother touched my lego and broke it",
        "my dad beat my brother at chess",
        "mom use the iron to make my shirt flat",
        "my friend knows where i live",
        "i owe him money for lunch",
        "my mom works at a bar",
        "my cat comes into my room at night",
        "my mom told me to take off my clothes for my bath",
        "my sister has a boyfriend, he is an adult",
    ],
)
def test_second_review_everyday_english_stays_below_a_human(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "i will go to the bridge tonight and jump",
        "i will drink the bleach tonight",
        "the rope is on the fan now",
        "i eat 20 pills",
        "i hiding in the toilet, papa very angry he break things",
        "he is coming to hit me",
        "he choke me",
        "he touch my pee pee",
        "my online boyfriend is 25 and i am 12",
        "he say he post my photo if i not give money",
        "i cut my hand many times, blood come out",
        "bye forever",
    ],
)
def test_second_review_harm_reaches_a_human(text: str) -> None:
    assert assess(text).needs_human, assess(text)


def test_template_leftovers_in_a_pattern_file_are_refused() -> None:
    """A generator's "{0,40}" turned into "(0, 40)" by an f-string made two patterns dead."""
    from nlp.lexicon import _TEMPLATE_LEFTOVER

    assert _TEMPLATE_LEFTOVER.search(r"\bx[^.](0, 40)y")
    assert _TEMPLATE_LEFTOVER.search(r"({MED2})")
    assert not _TEMPLATE_LEFTOVER.search(r"\bx[^.]{0,40}y")


def test_scope_found_by_the_review() -> None:
    assert assess("he raped me").subject == "self"
    assert assess("he touches my leg").subject == "self"
    assert assess("my dad hits my little sister").subject == "other"
    assert assess("my dad doesn't hit me").level == Level.ROUTINE
    assert assess("i took 30 pills last month").level == Level.URGENT  # an attempt, not now
    assert not assess("i stopped cutting 6 months ago").needs_human
    assert not assess("romeo and juliet both commit suicide").needs_human


def test_english_words_are_not_cut_on_lexicon_terms() -> None:
    """jieba split "remote" into r | emo | te on the lexicon's "emo"."""
    assert assess("we fought over the remote").level == Level.NONE
    assert assess("i feel so emo today").level == Level.ROUTINE


def test_negation_lowers_but_keeps_a_record() -> None:
    a = assess("i would never kill myself")
    assert a.level == Level.ROUTINE
    assert any(h.rule.endswith(":negated") for h in a.hits)
    assert assess("i do not want to die").level == Level.ROUTINE
    # "do not want to live" is the wish itself, not a negated one
    assert assess("i do not want to live anymore").needs_human


def test_an_attempt_months_ago_is_not_lowered_to_a_record() -> None:
    """Weeks or months ago is recent: a suicide attempt then still needs a human today. Only
    years ago, childhood and "used to" are the past."""
    assert assess("i tried to kill myself 2 months ago").needs_human
    assert assess("i took 30 pills a few months ago").needs_human
    assert assess("when i was 8 my dad hit me with a belt").level == Level.ROUTINE


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


def test_second_english_dev_wave_floors() -> None:
    """Wave 18 (English: whole conversations, teenagers online, take-backs, Singapore and Hong
    Kong English) was measured before use: recall 0.31 with the fourth pass, 0.58 with the
    English layer and its review; then tuned on."""
    rep = evaluate(read_rows(DATA / "dev_wave18.jsonl"), assess)
    p, r, _f = rep.prf()
    assert r >= 0.95, rep.misses
    assert p >= 0.9, rep.false_alarms
    assert rep.imminent_to_human == rep.imminent_rows
    assert rep.subject_ok >= 0.8 * rep.subject_n


def test_young_and_second_language_wave_floors() -> None:
    """Wave 19 (children 8-12 and second-language English) was measured before use: recall
    0.19 with the fourth pass, 0.48 with this pass's English before it; then tuned on."""
    rep = evaluate(read_rows(DATA / "dev_wave19.jsonl"), assess)
    p, r, _f = rep.prf()
    assert r >= 0.95, rep.misses
    assert p >= 0.93, rep.false_alarms
    assert rep.imminent_to_human == rep.imminent_rows


@pytest.mark.parametrize(
    "text",
    [
        "mother not come home three day, now no more noodle",
        "i holding the rope now",
        "papa drunk and holding knife now, he shout he kill everybody, i hide under bed",
        "uncle take me to his house and lock the door, he say take off clothes",
        "i standing on the MRT platform edge now, next train i jump",
    ],
)
def test_second_language_english_reaches_a_human(text: str) -> None:
    assert assess(text).needs_human, assess(text)


def test_it_was_me_who_found_her_is_about_the_other_child() -> None:
    a = assess("it was me who found her", ["my sister took lots of pills"])
    assert a.needs_human and a.subject == "other", a


def test_signals_take_the_subject_of_the_text() -> None:
    """ "rn" has no person in it: it is about the child the rest of the message is about."""
    a = assess("my friend just texted me her dad is chasing her with a knife rn")
    assert a.level == Level.IMMINENT and a.subject == "other", a


def test_a_child_who_asked_for_a_friend_says_it_is_them() -> None:
    history = ["asking for a friend", "if someones cousin made them do stuff when everyone slept"]
    a = assess("ok its not a friend. its me. it happened again", history)
    assert a.needs_human and a.subject == "self", a


def test_english_held_out_wave_floors() -> None:
    """Wave 17 (English, 220 rows, a third about another child) is never read: recall 0.35 with
    the fourth pass, 0.56 with the English layer before wave 16 was read, 0.68 after, 0.68 (P
    0.82 -> 0.84) after the review's fixes, 0.68 after wave 18's rules, 0.70 after wave 19's."""
    rep = evaluate(read_rows(DATA / "heldout_wave17.jsonl"), assess)
    p, r, _f = rep.prf()
    assert len(rep.misses) + rep.tp >= 90
    assert r >= 0.64
    assert p >= 0.78
    assert rep.imminent_to_human >= 0.7 * rep.imminent_rows


def test_second_english_held_out_wave_floors() -> None:
    """Wave 20 (English, 200 rows, all registers) was written at the end of the fifth pass and
    measured once: recall 0.31 with the fourth pass, 0.71 (precision 0.88, 17 of 24 imminent
    rows to a human) with this pass's English. Never read."""
    rep = evaluate(read_rows(DATA / "heldout_wave20.jsonl"), assess)
    p, r, _f = rep.prf()
    assert len(rep.misses) + rep.tp >= 80
    assert r >= 0.66
    assert p >= 0.82
    assert rep.imminent_to_human >= 0.65 * rep.imminent_rows


def test_english_patterns_are_told_apart_by_their_prefix() -> None:
    """The one-English-phrase rule must not reach Chinese patterns (end_it_all, engaged_off)."""
    from nlp import english
    from nlp.lexicon import _rows

    assert all(english.is_pattern(cols[0]) for cols in _rows("patterns_en.tsv"))
    assert not any(english.is_pattern(cols[0]) for cols in _rows("patterns.tsv"))
