"""`qingting assess` (JSON lines in, one assessment per line out) and `qingting eval FILE`."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from nlp import assess
from nlp.types import Assessment


def _wire(a: Assessment) -> dict[str, Any]:
    """The output line of `qingting assess` (hits without weights, as the issue specifies)."""
    return {
        "level": a.level.label,
        "categories": list(a.categories),
        "subject": a.subject,
        "hits": [
            {"text": h.text, "start": h.start, "end": h.end, "category": h.category, "rule": h.rule}
            for h in a.hits
        ],
    }


def assess_main(stdin: TextIO, stdout: TextIO) -> int:
    """Read {"text": ...} or {"texts": [...]} lines; write one JSON assessment per line.
    A bad line gets {"error": ...} so that output lines stay aligned with input lines."""
    status = 0
    for line in stdin:
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            if isinstance(d, dict) and isinstance(d.get("texts"), list) and d["texts"]:
                texts = [str(t) for t in d["texts"]]
                out = _wire(assess(texts[-1], texts[:-1]))
            elif isinstance(d, dict) and "text" in d:
                out = _wire(assess(str(d["text"])))
            else:
                raise ValueError('expected {"text": ...} or {"texts": [...]}')
        except (ValueError, TypeError) as e:
            out = {"error": str(e)}
            status = 1
        stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        stdout.flush()
    return status


def eval_main(path: str, stdout: TextIO, stderr: TextIO) -> int:
    """Score the detector on a labelled file; progress bar on stderr, figures on stdout."""
    from nlp.evaluate import evaluate, format_report, read_rows

    try:
        rows = read_rows(path)
    except (OSError, ValueError) as e:
        stderr.write(f"qingting eval: cannot read {path}: {e}\n")
        return 2
    total = len(rows)
    t0 = time.perf_counter()

    def progress(i: int) -> None:
        if i == total or i % 50 == 0:
            width = 30
            done = width * i // max(total, 1)
            stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{total}")
            if i == total:
                stderr.write("\n")
            stderr.flush()

    rep = evaluate(rows, assess, progress)
    format_report(rep, path, stdout)
    dt = time.perf_counter() - t0
    stdout.write(f"time: {dt:.2f} s ({total / dt if dt else 0:.0f} rows/s incl. start-up)\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m nlp.cli assess` or `python -m nlp.cli eval FILE...`."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["assess"]:
        return assess_main(sys.stdin, sys.stdout)
    if args[:1] == ["eval"] and len(args) >= 2:
        return max(eval_main(p, sys.stdout, sys.stderr) for p in args[1:])
    sys.stderr.write("usage: python -m nlp.cli assess | eval FILE.jsonl [FILE...]\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
