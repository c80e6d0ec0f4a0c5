"""Second pass on issue 3: suicide-partner requests, indirect methods and dates, self-harm
tallies, distress at routine, resolution cues scoped to their clause, debate talk about others."""

from __future__ import annotations

import pytest

from nlp import Level, assess


def level(text: str, history: tuple[str, ...] = ()) -> Level:
    return assess(text, history).level


# ---------------------------------------------------------------- pacts
@pytest.mark.parametrize(
    "text",
    [
        "有没有人一起去死 我是初二的",
        "想走的人私信我 一起走私信我",
        "谁愿意带我一起离开这个世界",
        "陪我一起下地狱吧",
        "活着有什么意思 约吗",
        "一起离开吧 我在杭州",
    ],
)
def test_partner_requests_reach_a_human(text: str) -> None:
    a = assess(text)
    assert a.needs_human, a
    assert a.categories[0] == "suicide_self_harm"


def test_bare_partner_request_is_recorded_and_escalates_with_death_talk_earlier() -> None:
    assert level("有一起的吗") == Level.ROUTINE
    a = assess("有一起的吗", history=("我真的不想活了",))
    assert a.needs_human
    assert any(h.rule == "history:pact_with_death_talk" for h in a.hits), a.hits


@pytest.mark.parametrize(
    "text",
    [
        "有没有人一起去图书馆",
        "放学一起走吗",
        "周末约吗 去看电影",
        "组队打副本 来人",
        "要不要一起吃饭",
    ],
)
def test_everyday_together_is_not_risk(text: str) -> None:
    assert level(text) == Level.NONE, assess(text)


# ---------------------------------------------------------------- methods, means, dates, tallies
@pytest.mark.parametrize(
    "text",
    [
        "怎么去死才好",
        "等我爸妈走了之后我就去死",
        "先把这本书看完再死也不迟",
        "下辈子不要再做人了",
        "我的葬礼上不要有人哭",
        "每天站在窗边都想往下跳",
        "这是划的第十道了",
        "手腕上的伤疤都用护腕遮着 反正我死后也没人看",
    ],
)
def test_indirect_methods_and_plans_reach_a_human(text: str) -> None:
    assert assess(text).needs_human, assess(text)


def test_a_date_with_the_means_is_imminent() -> None:
    a = assess("安眠药攒够了 12月24号晚上")
    assert a.level == Level.IMMINENT, a
    assert any(h.rule.startswith("combo:method_and_time") for h in a.hits)


@pytest.mark.parametrize(
    "text",
    [
        "切了两刀西瓜给弟弟",
        "跳伞的时候纵身一跃 好刺激",
        "12月24号晚上八点看烟花",
        "平静地离开了舞台",
    ],
)
def test_everyday_cuts_leaps_and_dates_are_not_risk(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


# ---------------------------------------------------------------- distress vocabulary
@pytest.mark.parametrize(
    "text",
    ["我每天晚上都睡不着", "又偷偷哭了一晚上", "觉得自己一无是处", "看不到希望 每天都很煎熬"],
)
def test_distress_is_recorded_not_escalated(text: str) -> None:
    a = assess(text)
    assert a.level == Level.ROUTINE, a
    assert a.categories == ("suicide_self_harm",)
    assert a.hits and a.hits[0].text in text


def test_sadness_with_medicine_is_not_an_alarm() -> None:
    # 'sad' words are not death talk: a cold and its medicine stay a record
    assert level("感冒了好难受 吃药了") == Level.ROUTINE


@pytest.mark.parametrize(
    "text", ["这个视频笑哭我了", "哭笑不得 弟弟把作业吃了", "不用害怕 我陪你去"]
)
def test_distress_idioms_are_not_risk(text: str) -> None:
    assert level(text) == Level.NONE, assess(text)


# ---------------------------------------------------------------- resolution scope
def test_weak_resolution_cue_resolves_only_its_clause() -> None:
    assert level("他再也没有打我了") == Level.ROUTINE
    assert assess("让我睡吧 醒来要是不再为人就太好了").needs_human
    assert assess("想自杀的时候总会想到父母有一天再也没有醒来 然后安慰自己再等等吧").needs_human


# ---------------------------------------------------------------- debates about others
@pytest.mark.parametrize(
    "text",
    [
        "受害者有罪论太恶心了 女生被性侵还要被骂穿得少",
        "同性恋又没有害人 凭什么被打",
        "黑人抢劫被打死活该",
        "日本人当年杀了我们多少同胞",
        "这种人就该被打死",
        "你们这些人都去死吧",
        "死胖子 去天台等我",
    ],
)
def test_debate_and_insults_do_not_call_a_human(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


@pytest.mark.parametrize("text", ["我们班一个女生被性侵了", "凭什么打我 我又没做错"])
def test_the_same_words_about_a_child_still_call_a_human(text: str) -> None:
    assert assess(text).needs_human, assess(text)


def test_murder_suicide_is_not_an_insult() -> None:
    assert assess("我才好拉他一起去死").needs_human
