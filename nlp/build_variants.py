"""Offline: regenerate the pinyin rows of nlp/data/variants.tsv from the lexicon (needs pypinyin)."""

from __future__ import annotations

from pathlib import Path

from pypinyin import lazy_pinyin

DATA = Path(__file__).parent / "data"
BEGIN = "# >>> generated pinyin rows (python -m nlp.build_variants); do not edit by hand"
END = "# <<< end of generated pinyin rows"
# Tags whose terms children spell out in pinyin to slip past filters.
PINYIN_TAGS = {"intent", "method", "sexual", "violence", "attempt"}
# Initials that are in real use for a few terms (zs = 自杀 etc.); more would collide with chat.
INITIALS = {"zs": "自杀", "zsl": "自杀了", "xq": "性侵", "jb": "家暴"}
# Words whose lexicon tags are weak on their own but whose pinyin spelling is itself an evasion.
EXTRA = {"zi sha": "自杀", "xiang si": "想死", "qu si": "去死", "si le suan le": "死了算了"}


def pinyin_rows() -> list[str]:
    """Rows 'pinyin<TAB>term<TAB>pinyin' for lexicon terms of at least two characters."""
    rows: dict[str, str] = {}
    for line in (DATA / "lexicon.tsv").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        cols = line.split("\t")
        term, tags = cols[0], set(cols[4].split(","))
        if (
            len(term) < 2
            or not tags & PINYIN_TAGS
            or not all("\u4e00" <= c <= "\u9fff" for c in term)
        ):
            continue
        key = " ".join(lazy_pinyin(term))
        rows.setdefault(key, term)
    out = [f"{k}\t{v}\tpinyin\tgenerated" for k, v in sorted(rows.items())]
    out += [f"{k}\t{v}\tpinyin\tevasion in use" for k, v in EXTRA.items() if k not in rows]
    out += [f"{k}\t{v}\tpinyin\tinitials in use" for k, v in INITIALS.items()]
    return out


def main() -> None:
    """Rewrite the generated block of variants.tsv in place."""
    path = DATA / "variants.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    if BEGIN in lines:
        lines = lines[: lines.index(BEGIN)]
    lines += [BEGIN, *pinyin_rows(), END]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
