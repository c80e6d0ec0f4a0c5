"""Figures on the shared eval files, for the shipped policy and (for comparison) the SOS-1K-style
policy in which a bare wish to die is routine. Usage: .venv/bin/python bench/eval_report.py"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nlp import detector
from nlp.evaluate import evaluate, format_report, read_rows

EVAL = Path("/work/shared/eval")
FILES = ["sos1k_train.jsonl", "sos1k_test.jsonl", "weibo_everyday.txt", "cold_test.jsonl"]
DEV = Path(__file__).resolve().parents[1] / "tests" / "data" / "dev.jsonl"
POLICIES = {
    "shipped (policy.tsv)": {},
    "bare wish -> routine": {"wish_to_die_level": "routine"},
    "rules only (stage2 off)": {"stage2": "off"},
}


def main() -> None:
    """Print one block per policy and file."""
    files = [EVAL / f for f in FILES if (EVAL / f).exists()]
    if DEV.exists():
        files.append(DEV)
    for name, pol in POLICIES.items():
        d = detector.Detector(pol)
        print(f"######## policy: {name} {d.policy}")
        for f in files:
            t0 = time.perf_counter()
            rep = evaluate(read_rows(f), d.assess)
            format_report(rep, f.name, sys.stdout)
            print(f"({time.perf_counter() - t0:.2f} s)\n")


if __name__ == "__main__":
    main()
