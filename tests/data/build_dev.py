"""Convert tests/data/dev_src.txt (level|cats|subject|text, '>>' between conversation turns)
into tests/data/dev.jsonl. Run after editing the source: .venv/bin/python tests/data/build_dev.py"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
LEVELS = {"n": "none", "r": "routine", "u": "urgent", "i": "imminent"}
CATS = {
    "S": "suicide_self_harm",
    "X": "sexual_abuse",
    "P": "physical_abuse",
    "N": "neglect_abandonment",
    "B": "bullying",
    "O": "online_harm",
    "R": "other_rights",
}


def main() -> None:
    """Write dev.jsonl."""
    out = []
    for line in (HERE / "dev_src.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        level, cats, subject, text = line.split("|", 3)
        turns = [t.strip() for t in text.split(">>")]
        row = {
            "text": turns[-1],
            "level": LEVELS[level],
            "categories": [] if cats == "-" else [CATS[c] for c in cats.split(",")],
            "subject": subject,
        }
        if len(turns) > 1:
            row["history"] = turns[:-1]
        out.append(json.dumps(row, ensure_ascii=False))
    (HERE / "dev.jsonl").write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"{len(out)} rows")


if __name__ == "__main__":
    main()
