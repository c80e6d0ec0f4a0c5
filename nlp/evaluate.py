"""Scoring the detector on labelled files: the human-or-not decision, levels, categories."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from nlp.types import CATEGORIES, Assessment, Level


@dataclass
class Row:
    """One labelled text; None means the label is absent from the file."""

    text: str
    human: bool | None = None  # must reach a human (urgent/imminent)
    imminent: bool | None = None
    gold: str | None = None  # gold level label for the confusion table ('7' or 'urgent')
    categories: tuple[str, ...] | None = None
    history: tuple[str, ...] = ()
    subject: str | None = None


def read_rows(path: str | Path) -> list[Row]:
    """Rows from a JSONL file (text + labels) or a plain .txt file (one unlabelled text a line,
    read as 'should not reach a human')."""
    p = Path(path)
    rows: list[Row] = []
    with p.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if p.suffix != ".jsonl":
                rows.append(Row(line, human=False, imminent=False, gold="unlabelled"))
                continue
            d = json.loads(line)
            rows.append(_row(d))
    return rows


def _row(d: dict[str, Any]) -> Row:
    text = str(d.get("text", ""))
    history: tuple[str, ...] = tuple(map(str, d.get("history", ()) or ()))
    if isinstance(d.get("texts"), list) and d["texts"]:
        text, history = str(d["texts"][-1]), tuple(map(str, d["texts"][:-1]))
    human = imminent = None
    gold = None
    lvl = d.get("level", d.get("urgency"))
    if isinstance(lvl, int | float) and not isinstance(lvl, bool):
        # SOS-1K 0-10 scale: >= 6 reaches a human, >= 9 imminent (eval README mapping)
        human, imminent, gold = lvl >= 6, lvl >= 9, str(int(lvl))
    elif isinstance(lvl, str) and lvl:
        our = Level.parse(lvl)
        human, imminent, gold = our >= Level.URGENT, our >= Level.IMMINENT, our.label
    if "high_risk" in d:
        human = bool(d["high_risk"])
    if "offensive" in d and human is None:
        human, imminent, gold = False, False, f"offensive={d['offensive']}"
    cats = d.get("categories", d.get("category"))
    if isinstance(cats, str):
        cats = [cats] if cats else []
    subject = d.get("subject")
    return Row(
        text,
        human,
        imminent,
        gold,
        tuple(cats) if cats is not None else None,
        history,
        str(subject) if subject is not None else None,
    )


@dataclass
class Report:
    """Counts behind the printed figures."""

    n: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    to_human: int = 0
    at_least_routine: int = 0
    imminent_rows: int = 0
    imminent_to_human: int = 0
    imminent_as_imminent: int = 0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    cat: dict[str, Counter[str]] = field(default_factory=dict)
    subject_ok: int = 0
    subject_n: int = 0
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    def prf(self) -> tuple[float, float, float]:
        """Precision, recall, F1 of the 'reaches a human' decision."""
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f


def evaluate(
    rows: Iterable[Row],
    assess: Callable[[str, Sequence[str]], Assessment],
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Run assess on every row and count."""
    rep = Report()
    for i, row in enumerate(rows):
        a = assess(row.text, row.history)
        rep.n += 1
        human = a.level >= Level.URGENT
        rep.to_human += human
        rep.at_least_routine += a.level >= Level.ROUTINE
        if row.human is not None:
            if human and row.human:
                rep.tp += 1
            elif human:
                rep.fp += 1
                rep.false_alarms.append(row.text)
            elif row.human:
                rep.fn += 1
                rep.misses.append(row.text)
            else:
                rep.tn += 1
        if row.imminent:
            rep.imminent_rows += 1
            rep.imminent_to_human += human
            rep.imminent_as_imminent += a.level >= Level.IMMINENT
        if row.gold is not None:
            rep.confusion[(row.gold, a.level.label)] += 1
        if row.categories is not None:
            gold = set(row.categories)
            pred = set(a.categories) if a.level >= Level.ROUTINE else set()
            for c in CATEGORIES:
                cnt = rep.cat.setdefault(c, Counter())
                cnt["tp"] += c in gold and c in pred
                cnt["fp"] += c not in gold and c in pred
                cnt["fn"] += c in gold and c not in pred
        if row.subject is not None and row.subject != "none" and a.level >= Level.ROUTINE:
            rep.subject_n += 1
            rep.subject_ok += a.subject == row.subject
        if progress is not None:
            progress(i + 1)
    return rep


def format_report(rep: Report, name: str, out: TextIO) -> None:
    """Print the figures: decision P/R/F1, shares, per-category P/R, confusion of levels."""
    p, r, f = rep.prf()
    w = out.write
    w(f"== {name}: {rep.n} rows\n")
    if rep.tp + rep.fn:
        w(f"reach a human (urgent/imminent): precision {p:.3f} recall {r:.3f} F1 {f:.3f} ")
        w(f"(tp {rep.tp} fp {rep.fp} fn {rep.fn} tn {rep.tn})\n")
    w(f"share sent to a human: {rep.to_human / max(rep.n, 1):.2%} ({rep.to_human})\n")
    w(f"share at least routine: {rep.at_least_routine / max(rep.n, 1):.2%}\n")
    if rep.subject_n:
        w(
            f"subject right (flagged rows): {rep.subject_ok / rep.subject_n:.2%} of {rep.subject_n}\n"
        )
    if rep.imminent_rows:
        w(
            f"imminent-labelled rows: {rep.imminent_rows}; to a human "
            f"{rep.imminent_to_human / rep.imminent_rows:.2%}; assessed imminent "
            f"{rep.imminent_as_imminent / rep.imminent_rows:.2%}\n"
        )
    if rep.cat:
        w("category                precision  recall  (tp/fp/fn)\n")
        for c, cnt in rep.cat.items():
            tp, fp, fn = cnt["tp"], cnt["fp"], cnt["fn"]
            if not tp + fp + fn:
                continue
            cp = tp / (tp + fp) if tp + fp else 0.0
            cr = tp / (tp + fn) if tp + fn else 0.0
            w(f"{c:<22}  {cp:9.3f}  {cr:6.3f}  ({tp}/{fp}/{fn})\n")
    if rep.confusion:
        preds = [lv.label for lv in Level]
        golds = sorted({g for g, _ in rep.confusion}, key=_gold_key)
        w("confusion (rows: gold, columns: assessed)\n")
        w(f"{'gold':>14} " + " ".join(f"{x:>9}" for x in preds) + "\n")
        for g in golds:
            w(f"{g:>14} " + " ".join(f"{rep.confusion[(g, x)]:>9}" for x in preds) + "\n")


def _gold_key(g: str) -> tuple[int, int | str]:
    if g.isdigit():
        return (0, int(g))
    try:
        return (1, int(Level.parse(g)))
    except (KeyError, ValueError):
        return (2, g)
