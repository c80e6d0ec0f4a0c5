"""Risk builds across turns and never drops within a conversation."""

from __future__ import annotations

from nlp import Level, assess


def test_risk_builds_across_turns() -> None:
    assert assess("他又喝醉了").level < Level.URGENT
    assert assess("我躲在厕所").level < Level.URGENT
    a = assess("我躲在厕所", ["他又喝醉了"])
    assert a.level == Level.IMMINENT
    assert a.categories[0] == "physical_abuse"
    assert any(h.rule.startswith("history:") for h in a.hits)


def test_level_never_drops_when_the_next_message_is_calm() -> None:
    history = ["我好想死"]
    for calm in ["嗯", "没事了", "今天天气真好", ""]:
        a = assess(calm, history)
        assert a.level >= Level.URGENT, (calm, a)
        assert "suicide_self_harm" in a.categories
        history.append(calm)


def test_plan_then_time_is_imminent() -> None:
    assert assess("今晚", ["药攒够了"]).level == Level.IMMINENT
    assert assess("我在天台", ["我不想活了"]).level == Level.IMMINENT


def test_history_of_hyperbole_stays_calm() -> None:
    assert assess("好呀", ["我想死你了", "明天来我家玩吗"]).level == Level.NONE


def test_long_history_keeps_old_danger() -> None:
    history = ["我爸又打我了"] + ["嗯"] * 40
    assert assess("好的", history).level >= Level.URGENT
