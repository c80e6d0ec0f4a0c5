"""Second stage: TF-IDF character n-grams with logistic-regression heads, trained offline by
nlp/train.py (weights shipped in nlp/data/stage2.json, nothing downloaded at run time).

- `distress`: does this read like a tree-hole post (someone in suicidal distress) rather than
  everyday chat? Trained on sos1k_train against the team's everyday corpus (nlp/corpus/).
- `risk`: among tree-hole posts, is a method or plan emerging (SOS-1K level >= 6)?
- `harm`: does a child's message need a human (urgent or imminent), any category? Trained on
  the team's labelled dev waves against the everyday corpus; `category` (one softmax head over
  the seven categories) names what it saw.
- `imminent`: among harmful messages, is the danger now or within hours (the dev waves'
  imminent rows against their urgent ones)? It raises urgent to imminent: urgent from the rules,
  or from the harm head on the same message (so the model alone can call a message imminent).

The detector lets it raise a level the rules found, never lower one."""

from __future__ import annotations

import json
import math
import operator
import re
from collections import Counter
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

MODEL = Path(__file__).parent / "data" / "stage2.json"
_HAN = re.compile(r"[\u3400-\u9fff]+")


def content(text: str) -> str:
    """Han characters only: punctuation, emoji tags, @names and Latin say more about where a
    text was written (or who wrote the training data) than about the writer's risk."""
    return "".join(_HAN.findall(text))


def gram_levels(text: str, n_max: int, n_min: int = 1) -> list[list[str]]:
    """Character n-grams of the Han characters of normalised text, one list (with repeats) per
    length n_min..n_max: what training counts and what the runtime looks up, built alike."""
    t = content(text)
    out: list[list[str]] = []
    level = list(t)  # n-grams of length n, built from those of n - 1 (map runs in C)
    for n in range(1, n_max + 1):
        if n > 1:
            level = list(map(operator.add, level, t[n - 1 :]))
        if n >= n_min:
            out.append(level)
    return out


def ngrams(text: str, n_max: int, n_min: int = 1) -> Counter[str]:
    """Term frequencies of the n-grams of gram_levels (the training vectoriser's analyser)."""
    return Counter(g for level in gram_levels(text, n_max, n_min) for g in level)


@dataclass(frozen=True, slots=True)
class Scores:
    """What the three binary heads made of one text."""

    distress: float
    risk: float
    harm: float
    imminent: float = 0.0  # among harmful messages: danger now or within hours


class Stage2:
    """The shipped model: idf and one coefficient per head for each n-gram, and thresholds."""

    def __init__(self, path: Path = MODEL) -> None:
        d = json.loads(path.read_text(encoding="utf-8"))
        self.n_max = int(d["n_max"])
        self.n_min = int(d.get("n_min", 1))
        self.max_chars = int(d.get("max_chars", 400))
        self.heads: tuple[str, ...] = tuple(d["heads"])
        self.intercepts = tuple(float(d["intercepts"][h]) for h in self.heads)
        t = d["thresholds"]
        self.t_concern = float(t["concern"])  # distress alone: record (routine)
        self.t_distress = float(t["distress"])  # distress high enough to let risk call a human
        self.t_risk = float(t["risk"])
        self.t_harm = float(t["harm"])
        self.t_imminent = float(t.get("imminent", 1.01))  # > 1: never, for a model without it
        # n-gram -> (idf², idf·coef for each head): tf is almost always 1, so the products are
        # taken once here, not per message. The vocabulary is complete (coefs may be ~0) so the
        # L2 norm over known n-grams equals the one sklearn computed in training.
        self.features: dict[str, tuple[float, ...]] = {
            k: (float(v[0]) ** 2, *(float(v[0]) * float(c) for c in v[1:]))
            for k, v in d["features"].items()
        }
        cat = d["category_head"]
        self.categories: tuple[str, ...] = tuple(cat["classes"])
        self.cat_intercepts = tuple(float(x) for x in cat["intercepts"])
        self.cat_coefs: dict[str, tuple[float, ...]] = {
            k: tuple(float(x) for x in v) for k, v in cat["coefs"].items()
        }

    def _levels(self, norm_text: str) -> list[list[str]]:
        return gram_levels(norm_text[: self.max_chars], self.n_max, self.n_min)

    def _known(self, norm_text: str) -> dict[str, int]:
        """Term frequency of the model's n-grams in the text."""
        feats = self.features
        tf: dict[str, int] = {}
        for level in self._levels(norm_text):
            for g in level:
                if g in feats:
                    tf[g] = tf.get(g, 0) + 1
        return tf

    def _weights(self, g: str, k: int) -> tuple[float, ...]:
        w = self.features[g]
        if k > 1:  # sublinear tf: 1 + ln k
            s = 1.0 + math.log(k)
            return (w[0] * s * s, *(x * s for x in w[1:]))
        return w

    def _sums(self, norm_text: str) -> tuple[float, list[float]]:
        """The L2 norm of the text's TF-IDF vector and its dot product with each head."""
        feats = self.features
        levels = self._levels(norm_text)
        # One C-level pass: the weights of every known n-gram occurrence, summed per column.
        vals = list(filter(None, map(feats.get, chain.from_iterable(levels))))
        if not vals:
            return 1.0, [0.0] * len(self.heads)
        sums: list[float] = list(map(sum, zip(*vals, strict=True)))  # weights are floats
        # sklearn's tf is sublinear: a gram seen k times weighs (1 + ln k), not k. A repeated
        # longer n-gram repeats its characters too, so no repeated character: nothing to do.
        first = levels[0] if levels else []
        if self.n_min == 1 and len(set(first)) == len(first):
            return (math.sqrt(sums[0]) if sums[0] > 0 else 1.0), sums[1:]
        for level in levels:
            if len(set(level)) != len(level):
                for g, k in Counter(level).items():
                    w = feats.get(g) if k > 1 else None
                    if w is not None:
                        s = 1.0 + math.log(k)
                        sums[0] += w[0] * (s * s - k)
                        for i in range(1, len(w)):
                            sums[i] += w[i] * (s - k)
        return (math.sqrt(sums[0]) if sums[0] > 0 else 1.0), sums[1:]

    def score(self, norm_text: str) -> Scores:
        """Every head's probability for normalised text."""
        norm, dots = self._sums(norm_text)
        p = {
            h: _sigmoid(x / norm + b)
            for h, x, b in zip(self.heads, dots, self.intercepts, strict=True)
        }
        return Scores(p["distress"], p["risk"], p["harm"], p.get("imminent", 0.0))

    def explain(self, norm_text: str, head: str, category: bool = True) -> tuple[str, str]:
        """Why `head` fired: the category the category head thinks most likely ("" when not
        asked for), and the n-gram (>= 2 characters) that pushed `head` up most. Only asked
        when stage 2 raises a level."""
        tf = {g: self._weights(g, k) for g, k in self._known(norm_text).items()}
        col = 1 + self.heads.index(head)
        evidence, top = "", 0.0
        for g, w in tf.items():  # first occurrence first, as sklearn's order of ties
            if w[col] > top and len(g) > 1:
                evidence, top = g, w[col]
        if not category:
            return "", evidence
        norm = math.sqrt(sum(w[0] for w in tf.values())) or 1.0
        z = list(self.cat_intercepts)
        for g, w in tf.items():
            for i, x in enumerate(self.cat_coefs.get(g, ())):
                z[i] += math.sqrt(w[0]) / norm * x  # the TF-IDF value of g times its coef
        return self.categories[max(range(len(z)), key=z.__getitem__)], evidence


def _sigmoid(z: float) -> float:
    if z < -30:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))
