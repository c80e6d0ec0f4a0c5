"""Stage 2: the shipped model is scored exactly as trained, may raise but never lower, never
calls a human on its own for text the rules see nothing in, and shows where it looked."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nlp import Level, detector
from nlp.evaluate import read_rows
from nlp.stage2 import MODEL, Stage2
from nlp.train import EVERYDAY, HIGH, LOW, export, fit, load_everyday

DEV = Path(__file__).resolve().parents[1] / "data" / "dev.jsonl"


@pytest.fixture(scope="module")
def with_stage2() -> detector.Detector:
    return detector.Detector({"stage2": "on"})


@pytest.fixture(scope="module")
def rules_only() -> detector.Detector:
    return detector.Detector({"stage2": "off"})


def test_score_is_tfidf_l2_and_two_logistic_heads(tmp_path: Path) -> None:
    doc = {
        "n_max": 2,
        "intercepts": {"distress": -1.0, "risk": 0.5},
        "thresholds": {"concern": 0.5, "distress": 0.6, "risk": 0.5},
        "features": {"活": [1.5, 0.2, -0.1], "着": [1.2, 0.0, 0.0], "活着": [2.0, 1.0, 2.0]},
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    sc = Stage2(path).score("活 着活着")  # spaces are dropped: 活着活着
    # tf: 活 2, 着 2, 活着 2, 着活 (unknown); sublinear tf 1 + ln 2
    w = {
        "活": (1 + math.log(2)) * 1.5,
        "着": (1 + math.log(2)) * 1.2,
        "活着": (1 + math.log(2)) * 2.0,
    }
    n = math.sqrt(sum(x * x for x in w.values()))
    zd = (w["活"] * 0.2 + w["活着"] * 1.0) / n - 1.0
    zr = (w["活"] * -0.1 + w["活着"] * 2.0) / n + 0.5
    assert sc.distress == pytest.approx(1 / (1 + math.exp(-zd)))
    assert sc.risk == pytest.approx(1 / (1 + math.exp(-zr)))
    assert Stage2(path).evidence("活 着活着", "risk") == "活着"


def test_training_exports_a_model_that_scores_like_sklearn(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("sklearn")
    high = [
        "药已经攒够了 就等周末",
        "天台的门今晚没锁 我去了",
        "遗书写好了 明天就走",
        "刀就在枕头下面",
    ]
    low = ["活着好累 不知道为了什么", "每天都想哭 没人懂我", "好想消失一会儿", "心里空空的"]
    everyday = ["今天的数学作业好多", "周末去打篮球吗", "奶茶第二杯半价", "下雨了记得带伞"]
    texts = (high + low + everyday) * 3
    cls = np.array(([HIGH] * 4 + [LOW] * 4 + [EVERYDAY] * 4) * 3)
    v, md, mr = fit(texts, cls)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(export(v, md, mr, {"concern": 0.5, "distress": 0.5, "risk": 0.5})))
    model = Stage2(path)
    for t in ["药攒够了 今晚去天台", "作业好多 好累", "没人懂我 周末下雨"]:
        sc = model.score(t)
        x = v.transform([t])
        assert sc.distress == pytest.approx(md.predict_proba(x)[0, 1], abs=1e-4)
        assert sc.risk == pytest.approx(mr.predict_proba(x)[0, 1], abs=1e-4)
    assert model.score("药攒够了 今晚去天台").risk > model.score("好累 没人懂我").risk


def test_shipped_model_says_what_it_was_trained_on() -> None:
    doc = json.loads(MODEL.read_text(encoding="utf-8"))
    assert doc["rows"]["everyday"] == len(load_everyday())
    assert doc["rows"]["sos1k_train"] >= 900
    for k in ("concern", "distress", "risk"):
        assert 0.0 < doc["thresholds"][k] < 1.0


def test_never_lowers_what_the_rules_found(with_stage2, rules_only) -> None:  # type: ignore[no-untyped-def]
    for row in read_rows(DEV):
        assert with_stage2.analyse(row.text).level >= rules_only.analyse(row.text).level, row.text


def test_alone_it_never_calls_a_human(with_stage2, rules_only) -> None:  # type: ignore[no-untyped-def]
    """Where the rules see nothing, the model may record a concern, never call a human."""
    texts = load_everyday() + [r.text for r in read_rows(DEV)]
    called = [
        t
        for t in texts
        if rules_only.analyse(t).level == Level.NONE
        and with_stage2.analyse(t).level > Level.ROUTINE
    ]
    assert not called


def test_its_hits_point_into_what_was_written(with_stage2, rules_only) -> None:  # type: ignore[no-untyped-def]
    seen = 0
    for row in read_rows(DEV):
        for h in with_stage2.analyse(row.text).hits:
            if h.rule.startswith("stage2:"):
                seen += 1
                assert row.text[h.start : h.end] == h.text
                assert h.category == "suicide_self_harm"
                assert 0.0 < h.weight <= 1.0
    assert seen, "stage 2 raised nothing on the dev set"


def test_a_report_about_others_is_not_raised(with_stage2) -> None:  # type: ignore[no-untyped-def]
    a = with_stage2.analyse("新闻里说一名男子在天台轻生 被消防员救下了 大家要关注心理健康")
    assert not any(h.rule.startswith("stage2:") for h in a.hits)
