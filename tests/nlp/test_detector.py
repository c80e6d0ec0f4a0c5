"""The 'must handle' list of issue 3: hyperbole, negation, third person, means/plan/time,
warning signs, categories and explainable hits."""

from __future__ import annotations

import pytest

from nlp import CATEGORIES, Assessment, Level, assess


def level(text: str) -> Level:
    return assess(text).level


# ---------------------------------------------------------------- hyperbole and idiom
@pytest.mark.parametrize(
    "text",
    [
        "笑死我了",
        "今天累死了",
        "热死了",
        "饿死了 妈妈快做饭",
        "我想死你了",
        "打游戏杀时间",
        "电脑死机了",
        "今天打篮球了",
        "放学去打球",
        "每天打卡背单词",
        "今天课上讨论了安乐死",
        "热得想死",
        "打死我也不吃香菜",
        "跳楼价大甩卖",
        "王者荣耀五杀了",
    ],
)
def test_hyperbole_is_not_risk(text: str) -> None:
    assert level(text) == Level.NONE, assess(text)


# ---------------------------------------------------------------- negation and resolution
def test_negation_lowers_but_records() -> None:
    assert level("我没想过自杀") == Level.ROUTINE
    assert level("我不会自杀的 放心") == Level.ROUTINE
    assert level("我想自杀") >= Level.URGENT


def test_resolved_past_harm_is_routine_not_none() -> None:
    a = assess("以前被打过 现在好了")
    assert a.level == Level.ROUTINE
    assert "physical_abuse" in a.categories
    assert level("小时候挨过打 现在不会了") == Level.ROUTINE


def test_ongoing_harm_is_not_treated_as_past() -> None:
    assert level("小时候开始爸爸就一直摸我 现在还这样") >= Level.URGENT


# ---------------------------------------------------------------- third person
def test_third_person_child_is_harm_to_a_child() -> None:
    a = assess("我同桌被她爸打")
    assert a.level >= Level.URGENT
    assert a.subject == "other"
    assert a.categories[0] == "physical_abuse"


def test_self_and_none_subjects() -> None:
    assert assess("我爸打我").subject == "self"
    assert assess("今天天气真好").subject == "none"
    assert assess("我妹妹说想自杀").subject == "other"


def test_adult_news_and_debate_is_recorded_not_escalated() -> None:
    assert level("新闻说一名男子跳楼了") <= Level.ROUTINE
    assert level("小说里的女主角被虐待 好惨") <= Level.ROUTINE


# ---------------------------------------------------------------- means, plans, time
def test_wish_to_die_is_urgent() -> None:
    assert level("我想死") == Level.URGENT


@pytest.mark.parametrize(
    "text",
    [
        "药攒够了 今晚就吃",
        "我已经把遗书写好了 药也准备好了",
        "今晚我就去天台 不想活了",
        "我现在站在天台上",
        "我买好了绳子 等他们睡着就上吊",
        "刚才吞了三十片安眠药 头好晕",
        "明天就去跳河",
        "我割了手腕 好多血 止不住",
        "最后一次跟你们说话了 我准备跳楼了",
    ],
)
def test_means_plan_time_are_imminent(text: str) -> None:
    assert level(text) == Level.IMMINENT, assess(text)


def test_means_raise_above_bare_words() -> None:
    assert level("我偷偷在攒安眠药") >= Level.URGENT
    assert level("我写了遗书") >= Level.URGENT
    assert level("想烧炭") >= Level.URGENT
    assert level("我今天吃药了 感冒好多了") == Level.NONE


# ---------------------------------------------------------------- warning signs
@pytest.mark.parametrize(
    ("text", "at_least", "category"),
    [
        ("谢谢你们所有人 再见了 我不想活了", Level.URGENT, "suicide_self_harm"),
        ("感觉自己是个累赘 死了算了", Level.URGENT, "suicide_self_harm"),
        ("我把我的手办都送给同桌了 反正以后也用不上 我想死", Level.URGENT, "suicide_self_harm"),
        ("我用刀片割手", Level.URGENT, "suicide_self_harm"),
        ("他用皮带抽我 背上都是淤青", Level.URGENT, "physical_abuse"),
        ("他在外面砸门 我躲在厕所", Level.IMMINENT, "physical_abuse"),
        ("我爸正在打我", Level.IMMINENT, "physical_abuse"),
        ("邻居叔叔给我糖 让我摸他 说这是我们的秘密", Level.URGENT, "sexual_abuse"),
        ("他现在在我房间 锁了门 正在脱我衣服", Level.IMMINENT, "sexual_abuse"),
        ("他有我的私密照 说不给钱就发到网上", Level.URGENT, "online_harm"),
        ("有人让我用妈妈的手机扫码转账 说可以领皮肤", Level.URGENT, "online_harm"),
        ("我爸不让我上学了 让我去打工", Level.URGENT, "other_rights"),
        ("我才14岁 家里逼我嫁人", Level.URGENT, "other_rights"),
        ("我爸妈不给我饭吃", Level.URGENT, "neglect_abandonment"),
        ("他们几个人堵我 要我钱", Level.URGENT, "bullying"),
        ("同学欺负我", Level.ROUTINE, "bullying"),
    ],
)
def test_warning_signs(text: str, at_least: Level, category: str) -> None:
    a = assess(text)
    assert a.level >= at_least, a
    assert category in a.categories, a


# ---------------------------------------------------------------- explainability
def test_hits_explain_with_spans_into_the_original() -> None:
    text = "我真的 想 死 了"
    a = assess(text)
    assert a.hits
    for h in a.hits:
        assert 0 <= h.start < h.end <= len(text)
        assert h.text == text[h.start : h.end]
        assert h.rule
        assert h.category in CATEGORIES
    assert any("想 死" in h.text for h in a.hits)


def test_combination_rules_name_themselves() -> None:
    a = assess("药攒够了 今晚就吃")
    assert any(h.rule.startswith("combo:") for h in a.hits)


def test_assessment_round_trips() -> None:
    a = assess("我爸喝醉了在打我妈 我躲在衣柜里")
    assert Assessment.from_dict(a.to_dict()) == a
    assert a.needs_human
