"""Offline: train stage 2 (nlp/stage2.py) and write nlp/data/stage2.json. Needs scikit-learn
(extra 'train'); the runtime does not.

    .venv/bin/python -m nlp.train [--data ../shared/eval/sos1k_train.jsonl]

Data: sos1k_train (tree-hole comments with SOS-1K levels) and the team's everyday corpus
(nlp/corpus/*.txt, invented negatives). Thresholds are chosen out of fold, inside these files;
the test files are never read here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nlp.normalize import Normaliser
from nlp.stage2 import MODEL, ngrams

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent.parent / "shared" / "eval" / "sos1k_train.jsonl"
CORPUS = ROOT / "corpus"
N_MIN, N_MAX = 1, 3  # without unigrams: 5-fold risk F1 0.775 (vs 0.789), fewer lookups
MIN_DF = 2
C = 4.0
MIN_CHARS = 12  # the detector does not ask stage 2 about shorter texts (detector.STAGE2_MIN_CHARS)
EVERYDAY_RAISED = 0.005  # share of everyday text stage 2 may send to a human (out of fold)
EVERYDAY_CONCERN = 0.01  # share of everyday text stage 2 may record as a concern (routine)
EVERYDAY, LOW, HIGH = 0, 1, 2  # classes: everyday text, tree hole below level 6, level >= 6


def load_everyday(folder: Path = CORPUS) -> list[str]:
    """Every line of the everyday corpus files, comments skipped."""
    out: list[str] = []
    for f in sorted(folder.glob("*.txt")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("# "):  # "#话题#" is a post
                out.append(line.strip())
    return out


def fit(texts: list[str], cls: Any) -> tuple[Any, Any, Any]:
    """Vectoriser over all texts; distress head (tree hole vs everyday); risk head (tree hole)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    v = TfidfVectorizer(
        analyzer=lambda t: list(ngrams(t, N_MAX, N_MIN).elements()),
        min_df=MIN_DF,
        sublinear_tf=True,
        norm="l2",
    )
    x = v.fit_transform(texts)
    distress = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")
    distress.fit(x, (cls != EVERYDAY).astype(int))
    sos = cls != EVERYDAY
    risk = LogisticRegression(C=C, max_iter=3000, class_weight="balanced")
    risk.fit(x[sos], (cls[sos] == HIGH).astype(int))
    return v, distress, risk


def export(v: Any, distress: Any, risk: Any, thresholds: dict[str, float]) -> dict[str, Any]:
    """The JSON document nlp.stage2.Stage2 reads."""
    feats = {
        g: [
            round(float(v.idf_[i]), 6),
            round(float(distress.coef_[0][i]), 6),
            round(float(risk.coef_[0][i]), 6),
        ]
        for g, i in sorted(v.vocabulary_.items())
    }
    return {
        "n_min": N_MIN,
        "n_max": N_MAX,
        "max_chars": 400,
        "intercepts": {
            "distress": float(distress.intercept_[0]),
            "risk": float(risk.intercept_[0]),
        },
        "thresholds": {k: round(float(t), 2) for k, t in thresholds.items()},
        "features": feats,
    }


def main(argv: list[str] | None = None) -> None:
    """Fit both heads, choose thresholds by 5-fold cross-validation, write the model."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--corpus", default=str(CORPUS), help="folder of everyday *.txt files")
    ap.add_argument("--out", default=str(MODEL))
    args = ap.parse_args(argv)
    norm = Normaliser()
    rows = [json.loads(x) for x in Path(args.data).read_text(encoding="utf-8").splitlines() if x]
    everyday = load_everyday(Path(args.corpus))
    texts = [norm(r["text"]).text[:400] for r in rows] + [norm(t).text[:400] for t in everyday]
    cls = np.array(
        [HIGH if int(r["level"]) >= 6 else LOW for r in rows] + [EVERYDAY] * len(everyday)
    )
    long_enough = np.array([len("".join(t.split())) >= MIN_CHARS for t in texts])

    oof_d = np.zeros(len(texts))
    oof_r = np.zeros(len(texts))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, cls):
        v, md, mr = fit([texts[i] for i in tr], cls[tr])
        x = v.transform([texts[i] for i in te])
        oof_d[te] = md.predict_proba(x)[:, 1]
        oof_r[te] = mr.predict_proba(x)[:, 1]
    sos = cls != EVERYDAY
    high = cls == HIGH
    ev = ~sos
    grid = np.arange(0.20, 0.99, 0.01)
    # risk: the model's own best point on tree-hole posts (out of fold).
    t_risk = float(max(grid, key=lambda t: _f1(high[sos], oof_r[sos] >= t)))

    def raised(t: float) -> Any:
        return (oof_d >= t) & (oof_r >= t_risk) & long_enough

    def concern(t: float) -> Any:
        return (oof_d >= t) & long_enough

    # distress gate for a human: the lowest at which at most EVERYDAY_RAISED of everyday lines
    # would be sent to one; concern (routine): the lowest at which at most EVERYDAY_CONCERN are.
    t_distress = float(next((t for t in grid if raised(t)[ev].mean() <= EVERYDAY_RAISED), 0.99))
    t_concern = float(next((t for t in grid if concern(t)[ev].mean() <= EVERYDAY_CONCERN), 0.99))
    out = export(*fit(texts, cls), {"concern": t_concern, "distress": t_distress, "risk": t_risk})
    out["about"] = (
        "TF-IDF char 1-3-grams; heads: distress (sos1k_train vs nlp/corpus everyday) and "
        "risk (sos1k_train level>=6); trained by nlp/train.py"
    )
    out["rows"] = {"sos1k_train": len(rows), "everyday": len(everyday)}
    out["cross_validated"] = {
        "risk_f1_on_sos1k_train": round(_f1(high[sos], oof_r[sos] >= t_risk), 4),
        "everyday_raised": round(float(raised(t_distress)[ev].mean()), 4),
        "everyday_concern": round(float(concern(t_concern)[ev].mean()), 4),
        "sos_concern": round(float(concern(t_concern)[sos].mean()), 4),
        "sos_high_raised": round(float(raised(t_distress)[high].mean()), 4),
    }
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")))
    print(
        f"wrote {args.out}: {len(out['features'])} features, thresholds {out['thresholds']}, "
        f"5-fold {out['cross_validated']}"
    )


def _f1(y: Any, pred: Any) -> float:
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


if __name__ == "__main__":
    main()
