"""Offline: train stage 2 (nlp/stage2.py) and write nlp/data/stage2.json. Needs scikit-learn
(extra 'train'); the runtime does not.

    .venv/bin/python -m nlp.train [--data ../shared/eval/sos1k_train.jsonl]

Data: sos1k_train (tree-hole comments with SOS-1K levels), the team's everyday corpus
(nlp/corpus/*.txt, invented negatives) and the team's labelled dev waves (tests/data/dev.jsonl,
dev_wave3, 5-10, 12, 14, 15.jsonl; never the heldout_wave*.jsonl files). Thresholds are chosen out of fold, inside these
files; the test files are never read here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nlp.normalize import Normaliser
from nlp.stage2 import MODEL, content, ngrams

ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = ROOT.parent.parent / "shared" / "eval" / "sos1k_train.jsonl"
CORPUS = ROOT / "corpus"
DEV_WAVES = [
    ROOT.parent / "tests" / "data" / f
    for f in ("dev.jsonl", *(f"dev_wave{n}.jsonl" for n in (3, 5, 6, 7, 8, 9, 10, 12, 14, 15)))
]
# dev_wave13.jsonl (60 % none, written to trip keyword filters) tunes the rules and measures false
# alarms; in stage 2's training its mix pushed the harm threshold up (5-fold dev harm recall 0.53
# -> 0.50), so it is left out there: the other waves' mix is closer to what a helpline hears.
# Character bigrams. 5-fold on the training data (waves up to 15): 1-2-grams gave dev harm
# recall 0.527 at 0.035 false alarms, imminent recall 0.81, tree-hole high-risk raised 0.64;
# bigrams alone 0.574 at 0.051, 0.78, 0.60, and assess() 15 % faster (it had fallen to 5,000
# msg/s). Earlier, 1-3-grams generalised a little better still but cost 14 % more.
N_MIN, N_MAX = 2, 2
MIN_DF = 3
C = 4.0
MIN_CHARS = 12  # the detector does not ask stage 2 about shorter texts (detector.STAGE2_MIN_CHARS)
EVERYDAY_RAISED = 0.0025  # share of everyday text stage 2 may send to a human (out of fold)
EVERYDAY_CONCERN = 0.01  # share of everyday text stage 2 may record as a concern (routine)
EVERYDAY_HARM = 0.001  # share of everyday text the harm head may send to a human (out of fold)
EVERYDAY, LOW, HIGH, CHILD_OK, CHILD_HARM = 0, 1, 2, 3, 4  # row kinds (see main)
HEADS = ("distress", "risk", "harm", "imminent")
IMMINENT_PRECISION = 0.8  # of urgent rows the imminent head raises, this share must be imminent


def load_everyday(folder: Path = CORPUS) -> list[str]:
    """Every line of the everyday corpus files, comments skipped."""
    out: list[str] = []
    for f in sorted(folder.glob("*.txt")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("# "):  # "#话题#" is a post
                out.append(line.strip())
    return out


def load_dev(paths: list[Path]) -> list[tuple[str, bool, str, bool]]:
    """(the conversation's text, needs a human, primary category, imminent) for each labelled
    dev row."""
    out = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            text = " ".join([*r.get("history", ()), r["text"]])
            cats = r.get("categories") or [""]
            level = r["level"]
            out.append((text, level in ("urgent", "imminent"), cats[0], level == "imminent"))
    return out


def fit(texts: list[str], kind: Any, cat: Any, now: Any) -> dict[str, Any]:
    """Vectoriser over all texts and the heads, each on its own rows:
    distress (tree hole vs everyday), risk (within the tree hole), harm (a child's message that
    needs a human vs the rest of the dev waves and everyday text), imminent (among the harmful
    dev rows, danger now or within hours), category (harmful dev rows)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    v = TfidfVectorizer(
        analyzer=lambda t: list(ngrams(t, N_MAX, N_MIN).elements()),
        min_df=MIN_DF,
        sublinear_tf=True,
        norm="l2",
    )
    x = v.fit_transform(texts)

    def lr(rows: Any, y: Any, balanced: bool = True) -> Any:
        m = LogisticRegression(C=C, max_iter=3000, class_weight="balanced" if balanced else None)
        return m.fit(x[rows], y)

    sos_or_ev = (kind == EVERYDAY) | (kind == LOW) | (kind == HIGH)
    sos = (kind == LOW) | (kind == HIGH)
    child_or_ev = (kind == EVERYDAY) | (kind == CHILD_OK) | (kind == CHILD_HARM)
    harmful = (kind == CHILD_HARM) & (cat != "")
    return {
        "vectoriser": v,
        "distress": lr(sos_or_ev, (kind[sos_or_ev] != EVERYDAY).astype(int)),
        "risk": lr(sos, (kind[sos] == HIGH).astype(int)),
        "harm": lr(child_or_ev, (kind[child_or_ev] == CHILD_HARM).astype(int)),
        "imminent": lr(kind == CHILD_HARM, now[kind == CHILD_HARM].astype(int)),
        "category": lr(harmful, cat[harmful]),
    }


def export(model: dict[str, Any], thresholds: dict[str, float]) -> dict[str, Any]:
    """The JSON document nlp.stage2.Stage2 reads."""
    v = model["vectoriser"]
    feats = {
        g: [
            round(float(v.idf_[i]), 6),
            *(round(float(model[h].coef_[0][i]), 6) for h in HEADS),
        ]
        for g, i in sorted(v.vocabulary_.items())
    }
    cm = model["category"]
    # Only n-grams that move the category; the norm comes from the full table above.
    cat_coefs = {
        g: [round(float(cm.coef_[k][i]), 4) for k in range(len(cm.classes_))]
        for g, i in sorted(v.vocabulary_.items())
        if max(abs(float(cm.coef_[k][i])) for k in range(len(cm.classes_))) >= 0.05
    }
    return {
        "n_min": N_MIN,
        "n_max": N_MAX,
        "max_chars": 400,
        "heads": list(HEADS),
        "intercepts": {h: float(model[h].intercept_[0]) for h in HEADS},
        "thresholds": {k: round(float(t), 2) for k, t in thresholds.items()},
        "features": feats,
        "category_head": {
            "classes": [str(c) for c in cm.classes_],
            "intercepts": [float(b) for b in cm.intercept_],
            "coefs": cat_coefs,
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Fit both heads, choose thresholds by 5-fold cross-validation, write the model."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--corpus", default=str(CORPUS), help="folder of everyday *.txt files")
    ap.add_argument("--dev", nargs="*", default=[str(p) for p in DEV_WAVES])
    ap.add_argument("--out", default=str(MODEL))
    args = ap.parse_args(argv)
    norm = Normaliser()
    rows = [json.loads(x) for x in Path(args.data).read_text(encoding="utf-8").splitlines() if x]
    everyday = load_everyday(Path(args.corpus))
    dev = load_dev([Path(p) for p in args.dev])
    raw = [r["text"] for r in rows] + everyday + [t for t, _h, _c, _n in dev]
    texts = [norm(t).text[:400] for t in raw]
    kind = np.array(
        [HIGH if int(r["level"]) >= 6 else LOW for r in rows]
        + [EVERYDAY] * len(everyday)
        + [CHILD_HARM if h else CHILD_OK for _t, h, _c, _n in dev]
    )
    cat = np.array([""] * (len(rows) + len(everyday)) + [c if h else "" for _t, h, c, _n in dev])
    now = np.array([False] * (len(rows) + len(everyday)) + [n for _t, _h, _c, n in dev])
    long_enough = np.array([len(content(t)) >= MIN_CHARS for t in texts])

    oof = {h: np.zeros(len(texts)) for h in HEADS}
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(texts, kind):
        model = fit([texts[i] for i in tr], kind[tr], cat[tr], now[tr])
        x = model["vectoriser"].transform([texts[i] for i in te])
        for h in HEADS:
            oof[h][te] = model[h].predict_proba(x)[:, 1]
    sos = (kind == LOW) | (kind == HIGH)
    high = kind == HIGH
    ev = kind == EVERYDAY
    child = (kind == CHILD_OK) | (kind == CHILD_HARM)
    grid = np.arange(0.20, 0.99, 0.01)
    # risk: the best point on tree-hole posts out of fold, recall weighted twice (F2): the issue
    # asks recall >= 0.95 first, and safety rule 1 says to escalate when unsure.
    t_risk = float(max(grid, key=lambda t: _fbeta(high[sos], oof["risk"][sos] >= t, 2.0)))

    def raised(t: float) -> Any:
        return (oof["distress"] >= t) & (oof["risk"] >= t_risk) & long_enough

    def concern(t: float) -> Any:
        return (oof["distress"] >= t) & long_enough

    def harm(t: float) -> Any:
        return (oof["harm"] >= t) & long_enough

    # The lowest thresholds at which at most the allowed share of everyday lines would be
    # raised: model-written everyday text is easier than real posts, so the shares are small.
    t_distress = float(next((t for t in grid if raised(t)[ev].mean() <= EVERYDAY_RAISED), 0.99))
    t_concern = float(next((t for t in grid if concern(t)[ev].mean() <= EVERYDAY_CONCERN), 0.99))
    t_harm = float(next((t for t in grid if harm(t)[ev].mean() <= EVERYDAY_HARM), 0.99))
    # imminent: the lowest threshold at which, among harmful dev rows, what it raises is
    # imminent at least IMMINENT_PRECISION of the time (out of fold).
    hurt = kind == CHILD_HARM

    def imminent_precision(t: float) -> float:
        sel = hurt & (oof["imminent"] >= t)
        return float(now[sel].mean()) if sel.any() else 1.0

    t_imminent = float(next((t for t in grid if imminent_precision(t) >= IMMINENT_PRECISION), 0.99))
    thresholds = {
        "concern": t_concern,
        "distress": t_distress,
        "risk": t_risk,
        "harm": t_harm,
        "imminent": t_imminent,
    }
    out = export(fit(texts, kind, cat, now), thresholds)
    out["about"] = (
        f"TF-IDF char {N_MIN}-{N_MAX}-grams (Han only); heads: distress (sos1k_train vs nlp/corpus "
        "everyday), risk (sos1k_train level>=6), harm (dev waves urgent/imminent vs the rest "
        "and everyday), imminent (harmful dev rows: imminent vs urgent), category (dev waves); "
        "trained by nlp/train.py"
    )
    out["rows"] = {
        "sos1k_train": len(rows),
        "everyday": len(everyday),
        "dev": len(dev),
    }
    out["cross_validated"] = {
        "risk_f1_on_sos1k_train": round(_f1(high[sos], oof["risk"][sos] >= t_risk), 4),
        "risk_recall_on_sos1k_train": round(float((oof["risk"][sos & high] >= t_risk).mean()), 4),
        "imminent_recall_on_dev": round(
            float((oof["imminent"][hurt & now] >= t_imminent).mean()), 4
        ),
        "imminent_precision_on_dev": round(imminent_precision(t_imminent), 4),
        "everyday_raised": round(float(raised(t_distress)[ev].mean()), 4),
        "everyday_concern": round(float(concern(t_concern)[ev].mean()), 4),
        "sos_concern": round(float(concern(t_concern)[sos].mean()), 4),
        "sos_high_raised": round(float(raised(t_distress)[high].mean()), 4),
        "everyday_harm": round(float(harm(t_harm)[ev].mean()), 4),
        "dev_harm_recall": round(float(harm(t_harm)[hurt].mean()), 4),
        "dev_harm_false_alarms": round(float(harm(t_harm)[child & ~hurt].mean()), 4),
    }
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")))
    print(
        f"wrote {args.out}: {len(out['features'])} features, thresholds {out['thresholds']}, "
        f"5-fold {out['cross_validated']}"
    )


def _f1(y: Any, pred: Any) -> float:
    return _fbeta(y, pred, 1.0)


def _fbeta(y: Any, pred: Any, beta: float) -> float:
    """F-beta of a binary decision: beta > 1 weighs recall over precision."""
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    b2 = beta * beta
    return (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp) if tp else 0.0


if __name__ == "__main__":
    main()
