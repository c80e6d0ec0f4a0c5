"""Figures on the shared eval files, for the shipped policy and (for comparison) the SOS-1K-style
policy in which a bare wish to die is routine.

    .venv/bin/python bench/eval_report.py            # full reports
    .venv/bin/python bench/eval_report.py --summary  # one table row per policy and file

The files are read from ../shared/eval beside the checkout, or QINGTING_EVAL_DIR."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlp import detector
from nlp.evaluate import evaluate, format_report, read_rows

ROOT = Path(__file__).resolve().parents[1]
EVAL = Path(os.environ.get("QINGTING_EVAL_DIR", ROOT.parent / "shared" / "eval"))
FILES = ["sos1k_train.jsonl", "sos1k_test.jsonl", "weibo_everyday.txt", "cold_test.jsonl"]
DEV = ROOT / "tests" / "data" / "dev.jsonl"
# the team's waves never tuned on (4: third pass; 11: fourth pass; 17, 20: English, fifth pass)
HELDOUT = [ROOT / "tests" / "data" / f"heldout_wave{n}.jsonl" for n in (4, 11, 17, 20)]
POLICIES = {
    "shipped (policy.tsv)": {},
    "bare wish -> routine": {"wish_to_die_level": "routine"},
    "rules only (stage2 off)": {"stage2": "off"},
}


def main() -> None:
    """Print one block per policy and file (or, with --summary, one table)."""
    files = [EVAL / f for f in FILES if (EVAL / f).exists()]
    files += [f for f in (DEV, *HELDOUT) if f.exists()]
    if "--summary" in sys.argv:
        summary(files)
        return
    for name, pol in POLICIES.items():
        d = detector.Detector(pol)
        print(f"######## policy: {name} {d.policy}")
        for f in files:
            t0 = time.perf_counter()
            rep = evaluate(read_rows(f), d.assess)
            format_report(rep, f.name, sys.stdout)
            print(f"({time.perf_counter() - t0:.2f} s)\n")


def summary(files: list[Path]) -> None:
    """A markdown table: the reach-a-human decision, imminent rows, coverage, shares."""
    print("| policy | file | P | R | F1 | level >= 9 to a human | at least routine | to a human |")
    print("|---|---|---|---|---|---|---|---|")
    for name, pol in POLICIES.items():
        d = detector.Detector(pol)
        for f in files:
            rep = evaluate(read_rows(f), d.assess)
            p, r, f1 = rep.prf()
            prf = f"{p:.3f} | {r:.3f} | {f1:.3f}" if rep.tp + rep.fn else "— | — | —"
            imm = f"{rep.imminent_to_human}/{rep.imminent_rows}" if rep.imminent_rows else "—"
            print(
                f"| {name} | {f.name} | {prf} | {imm} | {rep.at_least_routine / rep.n:.1%} "
                f"| {rep.to_human / rep.n:.2%} |"
            )


if __name__ == "__main__":
    main()
