"""Stage 2: the shipped model is scored exactly as trained, may raise but never lower, calls a
human for everyday text almost never, and shows where it looked."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nlp import Level, detector
from nlp.evaluate import read_rows
from nlp.stage2 import MODEL, Stage2
from nlp.train import CHILD_HARM, CHILD_OK, EVERYDAY, HIGH, LOW, export, fit, load_everyday
from nlp.types import CATEGORIES

DATA = Path(__file__).resolve().parents[1] / "data"
DEV = DATA / "dev.jsonl"
HELDOUT = DATA / "heldout_wave4.jsonl"


@pytest.fixture(scope="module")
def with_stage2() -> detector.Detector:
    return detector.Detector({"stage2": "on"})


@pytest.fixture(scope="module")
def rules_only() -> detector.Detector:
    return detector.Detector({"stage2": "off"})


def test_score_is_tfidf_l2_and_two_logistic_heads(tmp_path: Path) -> None:
    doc = {
        "n_max": 2,
        "heads": ["distress", "risk", "harm"],
        "intercepts": {"distress": -1.0, "risk": 0.5, "harm": 0.0},
        "thresholds": {"concern": 0.5, "distress": 0.6, "risk": 0.5, "harm": 0.9},
        "features": {
            "活": [1.5, 0.2, -0.1, 0.0],
            "着": [1.2, 0.0, 0.0, 0.0],
            "活着": [2.0, 1.0, 2.0, -1.0],
        },
        "category_head": {
            "classes": ["bullying", "suicide_self_harm"],
            "intercepts": [0.1, 0.0],
            "coefs": {"活着": [0.0, 1.0]},
        },
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
    assert sc.harm == pytest.approx(1 / (1 + math.exp(w["活着"] / n)))
    # category: bullying's intercept (0.1) loses to suicide's 活着 weight (tf-idf ~0.74 * 1.0)
    assert Stage2(path).explain("活 着活着", "risk") == ("suicide_self_harm", "活着")


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
    hurt = ["我爸又用皮带抽我", "他现在就在门外砸门", "同学把我关在厕所里", "他现在在敲我房门"]
    fine = ["今天老师表扬我了", "我和同桌一起画画", "妈妈给我买了新书包", "放学去打球"]
    cats = ["physical_abuse", "physical_abuse", "bullying", "sexual_abuse"]
    texts = (high + low + everyday + hurt + fine) * 3
    kind = np.array(
        ([HIGH] * 4 + [LOW] * 4 + [EVERYDAY] * 4 + [CHILD_HARM] * 4 + [CHILD_OK] * 4) * 3
    )
    cat = np.array(([""] * 12 + cats + [""] * 4) * 3)
    now = np.array(([False] * 12 + [False, True, False, True] + [False] * 4) * 3)
    model = fit(texts, kind, cat, now)
    path = tmp_path / "m.json"
    th = {"concern": 0.5, "distress": 0.5, "risk": 0.5, "harm": 0.5, "imminent": 0.5}
    path.write_text(json.dumps(export(model, th)), encoding="utf-8")
    m = Stage2(path)
    for t in ["药攒够了 今晚去天台", "作业好多 好累", "没人懂我 周末下雨", "他又用皮带抽我"]:
        sc = m.score(t)
        x = model["vectoriser"].transform([t])
        assert sc.distress == pytest.approx(model["distress"].predict_proba(x)[0, 1], abs=1e-4)
        assert sc.risk == pytest.approx(model["risk"].predict_proba(x)[0, 1], abs=1e-4)
        assert sc.harm == pytest.approx(model["harm"].predict_proba(x)[0, 1], abs=1e-4)
        assert sc.imminent == pytest.approx(model["imminent"].predict_proba(x)[0, 1], abs=1e-4)
    assert m.score("药攒够了 今晚去天台").risk > m.score("好累 没人懂我").risk
    assert m.score("我爸用皮带抽我").harm > m.score("我爸给我买书包").harm
    assert m.score("他现在在门外").imminent > m.score("我爸用皮带抽我").imminent
    assert m.explain("用皮带抽我", "harm")[0] == "physical_abuse"


def test_shipped_model_says_what_it_was_trained_on() -> None:
    doc = json.loads(MODEL.read_text(encoding="utf-8"))
    assert doc["rows"]["everyday"] == len(load_everyday())
    assert doc["rows"]["sos1k_train"] >= 900
    assert doc["rows"]["dev"] >= 800  # dev.jsonl and dev_wave3.jsonl, never the held-out wave
    for k in ("concern", "distress", "risk", "harm", "imminent"):
        assert 0.0 < doc["thresholds"][k] < 1.0


def test_never_lowers_what_the_rules_found(with_stage2, rules_only) -> None:  # type: ignore[no-untyped-def]
    for row in read_rows(DEV):
        assert with_stage2.analyse(row.text).level >= rules_only.analyse(row.text).level, row.text


def test_on_everyday_text_it_almost_never_calls_a_human(with_stage2, rules_only) -> None:  # type: ignore[no-untyped-def]
    """Where the rules see nothing in everyday text, the model calls a human for at most one
    line in a thousand (in-sample: the thresholds were set out of fold at 0.1-0.25 %)."""
    texts = load_everyday()
    called = [
        t
        for t in texts
        if rules_only.analyse(t).level == Level.NONE
        and with_stage2.analyse(t).level > Level.ROUTINE
    ]
    assert len(called) <= len(texts) // 1000, called


def test_its_hits_point_into_what_was_written(with_stage2) -> None:  # type: ignore[no-untyped-def]
    seen = 0
    for row in read_rows(HELDOUT):
        for h in with_stage2.analyse(row.text).hits:
            if h.rule.startswith("stage2:"):
                seen += 1
                assert row.text[h.start : h.end] == h.text
                assert h.category in CATEGORIES
                assert 0.0 < h.weight <= 1.0
    assert seen >= 10, "stage 2 raised almost nothing on the held-out wave"


def test_a_report_about_others_is_not_raised(with_stage2) -> None:  # type: ignore[no-untyped-def]
    a = with_stage2.analyse("新闻里说一名男子在天台轻生 被消防员救下了 大家要关注心理健康")
    assert not any(h.rule.startswith("stage2:") for h in a.hits)


def test_harm_happening_now_is_raised_to_imminent_only_with_the_model(
    with_stage2, rules_only
) -> None:  # type: ignore[no-untyped-def]
    text = "继父现在就在我房间门口 一直敲门让我开门 妈妈不在家"  # not a training row
    assert rules_only.assess(text).level < Level.IMMINENT
    a = with_stage2.assess(text)
    assert a.level == Level.IMMINENT, a
    assert any(h.rule.startswith("stage2:imminent") for h in a.hits), a.hits
    # an old harm told calmly stays urgent
    assert with_stage2.assess("去年我爸用皮带抽过我 现在他不打了").level <= Level.URGENT
