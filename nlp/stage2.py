"""Second stage: TF-IDF character n-grams + logistic regression, trained offline by nlp/train.py
(weights shipped in nlp/data/stage2.json). It may raise a level the rules found, never lower."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

MODEL = Path(__file__).parent / "data" / "stage2.json"


def ngrams(text: str, n_max: int) -> Counter[str]:
    """Character 1..n_max-grams of normalised text (spaces dropped)."""
    t = "".join(text.split())
    c: Counter[str] = Counter()
    for n in range(1, n_max + 1):
        for i in range(len(t) - n + 1):
            c[t[i : i + n]] += 1
    return c


class Stage2:
    """The shipped model: idf and coefficient per n-gram, intercept, decision threshold."""

    def __init__(self, path: Path = MODEL) -> None:
        d = json.loads(path.read_text(encoding="utf-8"))
        self.n_max = int(d["n_max"])
        self.intercept = float(d["intercept"])
        self.threshold = float(d["threshold"])
        self.max_chars = int(d.get("max_chars", 400))
        # feature -> (idf, coef)
        self.features: dict[str, tuple[float, float]] = {
            k: (float(v[0]), float(v[1])) for k, v in d["features"].items()
        }
        self.vocab_idf_norm = d.get("sublinear_tf", True)

    def probability(self, norm_text: str) -> float:
        """P(high risk) for normalised text (the first max_chars characters)."""
        counts = ngrams(norm_text[: self.max_chars], self.n_max)
        sq = 0.0
        dot = 0.0
        # TF-IDF is L2-normalised over ALL n-grams in the vocabulary seen in training; the
        # shipped table keeps every vocabulary n-gram (coef may be ~0) so the norm is exact.
        for g, tf in counts.items():
            f = self.features.get(g)
            if f is None:
                continue
            w = (1.0 + math.log(tf)) * f[0]
            sq += w * w
            dot += w * f[1]
        if sq == 0.0:
            return 1.0 / (1.0 + math.exp(-self.intercept))
        z = dot / math.sqrt(sq) + self.intercept
        return 1.0 / (1.0 + math.exp(-z))
