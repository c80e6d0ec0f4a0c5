"""Second stage: TF-IDF character n-grams with two logistic-regression heads, trained offline by
nlp/train.py (weights shipped in nlp/data/stage2.json, nothing downloaded at run time).

- `distress`: does this read like a tree-hole post (someone in suicidal distress) rather than
  everyday chat? Trained on sos1k_train against the team's everyday corpus (nlp/corpus/).
- `risk`: among tree-hole posts, is a method or plan emerging (SOS-1K level >= 6)?

The detector lets it raise a level the rules found, never lower one."""

from __future__ import annotations

import json
import math
import operator
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

MODEL = Path(__file__).parent / "data" / "stage2.json"
_HAN = re.compile(r"[\u3400-\u9fff]+")


def content(text: str) -> str:
    """Han characters only: punctuation, emoji tags, @names and Latin say more about where a
    text was written (or who wrote the training data) than about the writer's risk."""
    return "".join(_HAN.findall(text))


def ngrams(text: str, n_max: int, n_min: int = 1) -> Counter[str]:
    """Character n_min..n_max-grams of the Han characters of normalised text."""
    t = content(text)
    c: Counter[str] = Counter()
    for n in range(n_min, n_max + 1):
        for i in range(len(t) - n + 1):
            c[t[i : i + n]] += 1
    return c


@dataclass(frozen=True, slots=True)
class Scores:
    """What the two heads made of one text."""

    distress: float
    risk: float


class Stage2:
    """The shipped model: idf and one coefficient per head for each n-gram, and thresholds."""

    def __init__(self, path: Path = MODEL) -> None:
        d = json.loads(path.read_text(encoding="utf-8"))
        self.n_max = int(d["n_max"])
        self.n_min = int(d.get("n_min", 1))
        self.max_chars = int(d.get("max_chars", 400))
        self.intercepts = (float(d["intercepts"]["distress"]), float(d["intercepts"]["risk"]))
        t = d["thresholds"]
        self.t_concern = float(t["concern"])  # distress alone: record (routine)
        self.t_distress = float(t["distress"])  # distress high enough to let risk call a human
        self.t_risk = float(t["risk"])
        # n-gram -> (idf², idf·distress coef, idf·risk coef): tf is almost always 1, so the
        # products are taken once here, not per message. The vocabulary is complete (coefs may
        # be ~0) so the L2 norm over known n-grams equals the one sklearn computed in training.
        self.features: dict[str, tuple[float, float, float]] = {
            k: (float(v[0]) ** 2, float(v[0]) * float(v[1]), float(v[0]) * float(v[2]))
            for k, v in d["features"].items()
        }

    def _grams(self, norm_text: str) -> list[str]:
        """The text's n-grams that the model knows, with repeats (first max_chars characters)."""
        t = content(norm_text[: self.max_chars])
        grams: list[str] = []
        level = list(t)  # n-grams of length n, built from those of n - 1 (map runs in C)
        for n in range(1, self.n_max + 1):
            if n > 1:
                level = list(map(operator.add, level, t[n - 1 :]))
            if n >= self.n_min:
                grams += level
        feats = self.features
        return [g for g in grams if g in feats]

    def _known(self, norm_text: str) -> dict[str, int]:
        """Term frequency of the model's n-grams in the text."""
        tf: dict[str, int] = {}
        for g in self._grams(norm_text):
            tf[g] = tf.get(g, 0) + 1
        return tf

    def _weights(self, g: str, k: int) -> tuple[float, float, float]:
        idf2, wd, wr = self.features[g]
        if k > 1:  # sublinear tf: 1 + ln k
            s = 1.0 + math.log(k)
            return idf2 * s * s, wd * s, wr * s
        return idf2, wd, wr

    def score(self, norm_text: str) -> Scores:
        """Both heads' probabilities for normalised text."""
        known = self._grams(norm_text)
        feats = self.features
        sq = dot_d = dot_r = 0.0
        if known:
            # Sum every occurrence (map/zip/sum run in C), then correct repeated n-grams from
            # k·w to sklearn's sublinear (1 + ln k)·w.
            sq, dot_d, dot_r = map(sum, zip(*map(feats.__getitem__, known), strict=True))
            if len(set(known)) != len(known):
                for g, k in Counter(known).items():
                    if k > 1:
                        idf2, wd, wr = feats[g]
                        s = 1.0 + math.log(k)
                        sq += idf2 * (s * s - k)
                        dot_d += wd * (s - k)
                        dot_r += wr * (s - k)
        norm = math.sqrt(sq) if sq > 0 else 1.0
        return Scores(
            _sigmoid(dot_d / norm + self.intercepts[0]),
            _sigmoid(dot_r / norm + self.intercepts[1]),
        )

    def evidence(self, norm_text: str, head: str) -> str:
        """The n-gram (>= 2 characters) that pushed `head` ('distress' or 'risk') up most."""
        col = 1 if head == "distress" else 2
        best, top = "", 0.0
        for g, k in self._known(norm_text).items():
            c = self._weights(g, k)[col]
            if c > top and len(g) > 1:
                best, top = g, c
        return best


def _sigmoid(z: float) -> float:
    if z < -30:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))
