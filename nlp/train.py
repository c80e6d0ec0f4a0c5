"""Offline: train the stage-2 model on sos1k_train (level >= 6 = high risk) and write
nlp/data/stage2.json. Needs scikit-learn (extra 'train'); the runtime does not.

    .venv/bin/python -m nlp.train [--data /work/shared/eval/sos1k_train.jsonl]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nlp.normalize import Normaliser
from nlp.stage2 import MODEL, ngrams

N_MAX = 3
MIN_DF = 2
C = 4.0
RAISED_PRECISION = 0.7


def main() -> None:
    """Fit, choose the threshold by 5-fold cross-validation inside the training file, write."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/eval/sos1k_train.jsonl")
    ap.add_argument("--out", default=str(MODEL))
    args = ap.parse_args()
    norm = Normaliser()
    rows = [json.loads(x) for x in Path(args.data).read_text(encoding="utf-8").splitlines() if x]
    texts = [norm(r["text"]).text[:400] for r in rows]
    y = np.array([int(r["level"]) >= 6 for r in rows], dtype=int)

    def vec() -> TfidfVectorizer:
        return TfidfVectorizer(
            analyzer=lambda t: list(ngrams(t, N_MAX).elements()),
            min_df=MIN_DF,
            sublinear_tf=True,
            norm="l2",
        )

    # Out-of-fold probabilities, for the detector's threshold choice (see detector.STAGE2_*).
    oof = np.zeros(len(rows))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, y):
        v = vec()
        x = v.fit_transform([texts[i] for i in tr])
        m = LogisticRegression(C=C, max_iter=2000, class_weight="balanced").fit(x, y[tr])
        oof[te] = m.predict_proba(v.transform([texts[i] for i in te]))[:, 1]
    # Threshold: the lowest at which the rows the model would RAISE (rules below urgent but with
    # a suicide concern of their own; out-of-fold) are high-risk at least RAISED_PRECISION of
    # the time. Everyday chat has a far lower base rate than the tree hole, so stay strict.
    from nlp import detector

    det = detector.Detector({"stage2": "off"})
    an = [det.analyse(r["text"]) for r in rows]
    gate = np.array([a.level < 2 and "suicide_self_harm" in a.categories for a in an])
    best = 0.98
    for t in np.arange(0.30, 0.98, 0.02):
        raised = gate & (oof >= t)
        if raised.sum() >= 5 and y[raised].mean() >= RAISED_PRECISION:
            best = float(t)
            break
    v = vec()
    x = v.fit_transform(texts)
    m = LogisticRegression(C=C, max_iter=2000, class_weight="balanced").fit(x, y)
    feats = {
        g: [round(float(v.idf_[i]), 5), round(float(m.coef_[0][i]), 5)]
        for g, i in v.vocabulary_.items()
    }
    out = {
        "about": "TF-IDF char 1-3-grams + logistic regression on sos1k_train (level>=6); "
        "trained by nlp/train.py",
        "n_max": N_MAX,
        "sublinear_tf": True,
        "max_chars": 400,
        "intercept": float(m.intercept_[0]),
        "threshold": round(best, 2),
        "cv_f1_at_threshold": round(_f1(y, oof >= best), 4),
        "raised_precision_target": RAISED_PRECISION,
        "features": feats,
    }
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")))
    print(
        f"wrote {args.out}: {len(feats)} features, threshold {best:.2f}, "
        f"5-fold F1 {_f1(y, oof >= best):.3f}"
    )


def _f1(y, pred) -> float:  # type: ignore[no-untyped-def]
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


if __name__ == "__main__":
    main()
