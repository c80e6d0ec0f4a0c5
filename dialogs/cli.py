"""`python -m dialogs validate FILE...` and the hook the project CLI calls."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from dialogs.validate import check_text


def validate_main(paths: list[str], out: TextIO) -> int:
    """Validate script files, print each problem (or 'ok'), return 1 if any problem else 0."""
    failed = False
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{path}: cannot read: {exc}", file=out)
            failed = True
            continue
        script, problems = check_text(text, path)
        for problem in problems:
            print(problem, file=out)
        if problems:
            failed = True
            print(f"{path}: {len(problems)} problem(s)", file=out)
        elif script is not None:
            print(f"{path}: ok ({script.id} {script.lang} version {script.version})", file=out)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m dialogs`."""
    parser = argparse.ArgumentParser(prog="python -m dialogs", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="check dialogue script files")
    check.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    return validate_main(args.files, sys.stdout)
