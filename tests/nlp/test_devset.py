"""Regression guard on the labelled dev set (tests/data/dev.jsonl): floors, not a test-set tune."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp import assess
from nlp.evaluate import evaluate, read_rows
from nlp.types import CATEGORIES

DEV = Path(__file__).resolve().parents[1] / "data" / "dev.jsonl"


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    return evaluate(read_rows(DEV), assess)


def test_dev_set_is_big_and_covers_everything() -> None:
    rows = read_rows(DEV)
    assert len(rows) >= 400
    cats = {c for r in rows for c in (r.categories or ())}
    assert cats == set(CATEGORIES)
    assert {r.gold for r in rows} == {"none", "routine", "urgent", "imminent"}
    assert sum(r.gold == "none" for r in rows) >= 150  # hard negatives
    assert any(r.history for r in rows)


def test_reach_a_human_floors(report) -> None:  # type: ignore[no-untyped-def]
    p, r, _f = report.prf()
    assert r >= 0.95, report.misses
    assert p >= 0.90, report.false_alarms


def test_every_imminent_row_reaches_a_human(report) -> None:  # type: ignore[no-untyped-def]
    assert report.imminent_to_human == report.imminent_rows
    assert report.imminent_as_imminent >= 0.85 * report.imminent_rows


def test_category_floors(report) -> None:  # type: ignore[no-untyped-def]
    for cat, cnt in report.cat.items():
        tp, fp, fn = cnt["tp"], cnt["fp"], cnt["fn"]
        assert tp / (tp + fn) >= 0.9, cat
        assert tp / (tp + fp) >= 0.75, cat


def test_subject_floor(report) -> None:  # type: ignore[no-untyped-def]
    assert report.subject_ok >= 0.9 * report.subject_n


WAVE3 = DEV.parent / "dev_wave3.jsonl"  # written without reading the lexicon, then tuned on
HELDOUT = DEV.parent / "heldout_wave4.jsonl"  # written independently; never read while tuning
HELDOUT_11 = DEV.parent / "heldout_wave11.jsonl"  # the second held-out wave (fourth pass)


def test_wave_three_floors() -> None:
    rep = evaluate(read_rows(WAVE3), assess)
    p, r, _f = rep.prf()
    assert r >= 0.95, rep.misses
    assert p >= 0.95, rep.false_alarms
    assert rep.imminent_to_human == rep.imminent_rows


def test_held_out_wave_floors() -> None:
    """Measured, not tuned: recall 0.30 before the third pass, 0.46 with its rules, 0.62 with
    the harm head, 0.73 with waves 5 and 6 in its training. A floor so that a change that loses
    generalisation is noticed."""
    rep = evaluate(read_rows(HELDOUT), assess)
    p, r, _f = rep.prf()
    assert len(rep.misses) + rep.tp >= 180
    assert r >= 0.74  # 0.78 after the fourth pass
    assert p >= 0.93
    assert rep.imminent_to_human >= 0.85 * rep.imminent_rows
    assert rep.imminent_as_imminent >= 0.6 * rep.imminent_rows


def test_second_held_out_wave_floors() -> None:
    """Wave 11 (ages 9-17, a third about another child, hard negatives) was written for the
    fourth pass and only measured: recall 0.76, precision 0.81 before it, 0.79 and 0.82 after."""
    rep = evaluate(read_rows(HELDOUT_11), assess)
    p, r, _f = rep.prf()
    assert len(rep.misses) + rep.tp >= 140
    assert r >= 0.75
    assert p >= 0.78
    assert rep.imminent_to_human >= 0.8 * rep.imminent_rows
