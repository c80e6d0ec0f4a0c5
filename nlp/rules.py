"""Combination rules: signals that together raise the level (a plan AND the means, hiding AND
violence). Each rule needs at least one active signal from every one of its groups."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from nlp.types import Level

SUICIDE, SEXUAL, PHYSICAL = "suicide_self_harm", "sexual_abuse", "physical_abuse"
NEGLECT, BULLYING, ONLINE = "neglect_abandonment", "bullying", "online_harm"
OTHER = "other_rights"

# Signals that show the conversation is about the writer's own death or self-harm.
S_CTX = frozenset(
    {
        "intent",
        "deathword",
        "lifeword",
        "distress",
        "burden",
        "leave",
        "attemptword",
        "goodbye",
        "selfharm",
        "attempt",
        "method",
    }
)
# Tags derived in the detector: "means+" (a means that counts on its own, floor >= routine),
# "traffic+" (a child taken, sold or married off, floor >= urgent).
TIME_ANY = frozenset({"time", "tonight", "now", "now_weak"})


@dataclass(frozen=True, slots=True)
class Rule:
    """A named conjunction of signal groups and the level/category it sets when all are present."""

    name: str
    level: Level
    category: str
    groups: tuple[frozenset[str], ...]
    why: str


def _r(name: str, level: Level, cat: str, why: str, *groups: set[str] | frozenset[str]) -> Rule:
    return Rule(name, level, cat, tuple(frozenset(g) for g in groups), why)


RULES: tuple[Rule, ...] = (
    # --- suicide and self-harm (SPG warning signs; CTL: means beat the word "suicide") ---
    _r(
        "plan_and_means",
        Level.IMMINENT,
        SUICIDE,
        "a plan/goodbye and the means",
        {"plan", "goodbye", "giveaway"},
        {"method", "means+"},
    ),
    _r(
        "method_and_time",
        Level.IMMINENT,
        SUICIDE,
        "a method or means and a time",
        {"method", "means+"},
        TIME_ANY,
    ),
    _r(
        "intent_tonight",
        Level.IMMINENT,
        SUICIDE,
        "a wish to die and 'tonight'",
        {"intent"},
        {"tonight"},
    ),
    _r(
        "attempt_now",
        Level.IMMINENT,
        SUICIDE,
        "an attempt happening now",
        {"attempt", "swallow"},
        {"now", "now_weak", "time", "tonight"},
        S_CTX | {"means+"},
    ),
    _r(
        "place_now",
        Level.IMMINENT,
        SUICIDE,
        "at a high place / water now with death talk",
        {"place"},
        {"now", "now_weak", "tonight"},
        {"intent", "method", "deathword", "goodbye"},
    ),
    _r(
        "standing_high_now",
        Level.IMMINENT,
        SUICIDE,
        "standing on a roof/bridge now or with death talk",
        {"standing"},
        {
            "now",
            "now_weak",
            "tonight",
            "soon",
            "intent",
            "method",
            "deathword",
            "goodbye",
            "distress",
        },
    ),
    _r(
        "selfharm_bleeding",
        Level.IMMINENT,
        SUICIDE,
        "self-harm with heavy bleeding",
        {"selfharm", "method", "attempt"},
        {"bleeding"},
    ),
    _r(
        "selfharm_bleeding_now",
        Level.IMMINENT,
        SUICIDE,
        "self-harm, injury, now",
        {"selfharm", "method"},
        {"injury"},
        {"now", "now_weak", "tonight"},
    ),
    _r(
        "place_tonight",
        Level.ROUTINE,
        SUICIDE,
        "a high place / water and 'tonight'",
        {"place"},
        {"tonight"},
    ),
    _r(
        "means_with_death_talk",
        Level.URGENT,
        SUICIDE,
        "means/place/plan with death talk",
        {"means", "place", "giveaway", "plan"},
        S_CTX,
    ),
    _r(
        "swallowed_with_death_talk",
        Level.URGENT,
        SUICIDE,
        "swallowed pills with death talk",
        {"swallow"},
        S_CTX,
    ),
    _r(
        "weak_plan_with_intent",
        Level.URGENT,
        SUICIDE,
        "'ready', 'last time' with a wish/method",
        {"plan_weak"},
        {"intent", "method", "means+", "deathword", "distress", "lifeword", "burden"},
    ),
    _r(
        "goodbye_with_death_talk",
        Level.URGENT,
        SUICIDE,
        "'don't look for me' with death talk",
        {"goodbye_weak"},
        {"intent", "deathword", "method", "means+", "distress"},
    ),
    _r(
        "method_context",
        Level.URGENT,
        SUICIDE,
        "a method word (窒息, 触电, 撞车) with a wish to die",
        {"method_ctx"},
        {"intent"},
    ),
    _r(
        "burden",
        Level.URGENT,
        SUICIDE,
        "feeling a burden with distress",
        {"burden"},
        {"distress", "deathword", "intent", "lifeword"},
    ),
    _r("selfharm_injury", Level.URGENT, SUICIDE, "self-harm with injury", {"selfharm"}, {"injury"}),
    _r(
        "pact_with_death_talk",
        Level.URGENT,
        SUICIDE,
        "asking for a partner ('一起?', '约') with death talk or the means",
        {"pact"},
        S_CTX | {"means+", "tonight"},
    ),
    _r(
        "scars_with_death_talk",
        Level.URGENT,
        SUICIDE,
        "self-harm scars with death talk",
        {"scar"},
        {"intent", "deathword", "goodbye", "method", "attempt"},
    ),
    # --- violence at home: happening now, hiding from it ---
    _r(
        "violence_now",
        Level.IMMINENT,
        PHYSICAL,
        "violence happening now",
        {"violence"},
        {"now", "hiding", "locked"},
    ),
    _r(
        "plea_in_danger",
        Level.IMMINENT,
        PHYSICAL,
        "a plea for help, or 'I am not safe', with violence or a threat",
        {"help", "danger"},
        {"violence", "violence_ctx", "drunk", "threat", "approach"},
    ),
    _r(
        "police_now",
        Level.IMMINENT,
        PHYSICAL,
        "asking for the police while violence is happening",
        {"police"},
        {"violence", "violence_ctx", "threat"},
        {"now", "now_weak", "hiding", "approach", "tonight"},
    ),
    _r(
        "hiding_from_approach",
        Level.IMMINENT,
        PHYSICAL,
        "hiding while someone comes for the child",
        {"hiding"},
        {"approach"},
    ),
    _r(
        "adult_romance",
        Level.URGENT,
        ONLINE,
        "an adult in a 'relationship' with a child (grooming)",
        {"romance"},
        {"age_gap"},
    ),
    _r(
        "hiding_from_violence",
        Level.IMMINENT,
        PHYSICAL,
        "hiding from violence or a drunk adult",
        {"hiding"},
        {"violence", "violence_ctx", "drunk", "threat"},
    ),
    _r(
        "hiding_from_conflict",
        Level.URGENT,
        PHYSICAL,
        "hiding during a fight",
        {"hiding"},
        {"conflict"},
    ),
    _r(
        "drunk_and_violent",
        Level.URGENT,
        PHYSICAL,
        "a drunk adult smashing or threatening",
        {"drunk"},
        {"violence_ctx", "threat", "conflict", "locked"},
    ),
    _r(
        "locked_in_danger",
        Level.IMMINENT,
        NEGLECT,
        "locked in with violence/abuse",
        {"locked"},
        {"violence", "threat", "sexual", "drunk", "day_count", "no_food"},
    ),
    _r(
        "threat_within_hours",
        Level.IMMINENT,
        PHYSICAL,
        "a threat of violence with a countdown or tonight",
        {"threat"},
        {"soon", "tonight", "approach"},
        {"violence", "violence_ctx", "bully"},
    ),
    _r(
        "invited_alone_now",
        Level.IMMINENT,
        SEXUAL,
        "an adult summoning the child alone tonight or within hours",
        {"invited"},
        {"tonight", "soon", "now"},
    ),
    _r(
        "trapped_in_danger",
        Level.IMMINENT,
        NEGLECT,
        "locked in with a danger (gas, fire)",
        {"danger"},
        {"locked"},
    ),
    _r(
        "drug_reaction",
        Level.IMMINENT,
        OTHER,
        "a drug given to the child and symptoms now",
        {"drug"},
        {"medical_emergency"},
    ),
    _r(
        "young_bride",
        Level.URGENT,
        OTHER,
        "a young child about to be married off",
        {"traffic"},
        {"young", "age_gap"},
    ),
    _r(
        "taken_within_hours",
        Level.IMMINENT,
        OTHER,
        "a child about to be taken away or sent to work",
        {"traffic+"},
        {"soon", "tonight", "now", "approach", "locked"},
    ),
    _r(
        "threat_and_violence",
        Level.URGENT,
        PHYSICAL,
        "threats with violence",
        {"threat"},
        {"violence", "violence_ctx"},
    ),
    # --- sexual abuse and grooming ---
    _r(
        "sexual_now",
        Level.IMMINENT,
        SEXUAL,
        "sexual abuse happening now / locked in",
        {"sexual"},
        {"now", "locked", "hiding", "tonight", "soon"},
    ),
    _r(
        "grooming_secret",
        Level.URGENT,
        SEXUAL,
        "an adult demanding secrecy around touch/gifts",
        {"secrecy"},
        {"sexual_ctx", "gift", "game", "sexual"},
    ),
    _r(
        "forced_labour",
        Level.URGENT,
        "other_rights",
        "child labour with being held or threatened",
        {"labour"},
        {"locked", "threat"},
    ),
    _r(
        "stranger_now",
        Level.IMMINENT,
        "other_rights",
        "a stranger following / taking the child, now",
        {"stranger"},
        {"now", "now_weak", "hiding", "traffic", "locked"},
    ),
    # --- online harm ---
    _r(
        "online_sexual",
        Level.URGENT,
        ONLINE,
        "a sexual request from an online contact",
        {"online_ctx", "online"},
        {"sexual", "sexual_ctx"},
    ),
    _r(
        "sextortion",
        Level.URGENT,
        ONLINE,
        "photos/chat online with threats or secrecy",
        {"online"},
        {"threat", "sexual_ctx", "secrecy", "expose"},
    ),
    _r(
        "online_meeting_secret",
        Level.URGENT,
        ONLINE,
        "meeting an online contact in secret",
        {"online_ctx", "online", "meet"},
        {"secrecy", "gift"},
    ),
    # --- bullying with injury ---
    _r(
        "alone_without_care",
        Level.URGENT,
        NEGLECT,
        "left alone for days and without food, locked in or sick",
        {"alone_days"},
        {"no_food", "medical", "locked", "labour"},
    ),
    _r(
        "alone_for_days",
        Level.URGENT,
        NEGLECT,
        "a child home alone, for days or without food",
        {"alone"},
        {"day_count", "alone_days", "no_food"},
    ),
    _r(
        "danger_approaching",
        Level.IMMINENT,
        PHYSICAL,
        "a violent or drunk adult coming for the child now",
        {"approach"},
        {"drunk", "violence", "violence_ctx", "threat"},
    ),
    _r(
        "hiding_hurt",
        Level.URGENT,
        PHYSICAL,
        "hiding and hurt",
        {"hiding"},
        {"injury", "injury_weak"},
    ),
    _r(
        "sextortion_deadline",
        Level.IMMINENT,
        ONLINE,
        "images threatened with a deadline",
        {"expose"},
        {"tonight", "time", "now", "soon"},
    ),
    _r(
        "meeting_now",
        Level.IMMINENT,
        ONLINE,
        "meeting an online contact now",
        {"meet"},
        {"now", "now_weak", "soon", "approach"},
        {"online", "online_ctx", "secrecy"},
    ),
    _r(
        "sick_alone_now",
        Level.IMMINENT,
        NEGLECT,
        "a medical emergency with no adult reachable",
        {"medical_emergency"},
        {"no_adult", "alone"},
    ),
    _r(
        "young_pregnant",
        Level.URGENT,
        SEXUAL,
        "a young child who is pregnant",
        {"pregnant"},
        {"young", "age_gap"},
    ),
    _r(
        "abandoned_now",
        Level.IMMINENT,
        NEGLECT,
        "abandoned and alone now",
        {"abandoned"},
        {"now", "now_weak", "tonight"},
    ),
    _r(
        "young_labour",
        Level.URGENT,
        OTHER,
        "a young child made to work or kept from school",
        {"labour"},
        {"young"},
    ),
    _r(
        "drug_coerced",
        Level.URGENT,
        OTHER,
        "a child coerced into drugs",
        {"drug"},
        {"threat"},
    ),
    _r(
        "farewell_today",
        Level.IMMINENT,
        SUICIDE,
        "a farewell, arrangements made and a day",
        {"goodbye", "goodbye_weak"},
        {"plan", "plan_weak"},
        {"time", "tonight", "now"},
    ),
    _r(
        "plan_place_time",
        Level.IMMINENT,
        SUICIDE,
        "a farewell or plan, a place and a time",
        {"plan", "goodbye"},
        {"place"},
        {"tonight", "time", "now"},
    ),
    _r(
        "farewell_unreachable",
        Level.IMMINENT,
        SUICIDE,
        "a farewell or an attempt and the child cannot be reached",
        {"goodbye", "attempt", "swallow", "place"},
        {"unreachable"},
        {"goodbye", "goodbye_weak", "attempt", "swallow", "means+", "method", "intent"},
    ),
    _r(
        "bullies_lock_in",
        Level.IMMINENT,
        BULLYING,
        "locked in by bullies",
        {"bully"},
        {"locked"},
    ),
    _r(
        "bullying_injury",
        Level.URGENT,
        BULLYING,
        "bullying with injuries or beating",
        {"bully"},
        {"injury", "violence"},
    ),
)

# Category for a hit on a modifier ("-") when the message gives it no other context.
DEFAULT_CATEGORY = {
    "secrecy": SEXUAL,
    "gift": SEXUAL,
    "game": SEXUAL,
    "threat": PHYSICAL,
    "hiding": PHYSICAL,
    "injury": PHYSICAL,
    "locked": NEGLECT,
    "drunk": NEGLECT,
}


def fired(active: frozenset[str] | set[str]) -> list[Rule]:
    """Rules whose every group has an active signal."""
    return list(_fired(frozenset(active)))


@lru_cache(maxsize=8192)
def _fired(active: frozenset[str]) -> tuple[Rule, ...]:
    if not active:
        return ()
    return tuple(r for r in RULES if all(g & active for g in r.groups))
