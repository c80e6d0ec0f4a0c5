"""Fourth pass on issue 3: a child who says plainly that they are not safe, want the police,
are locked in or are threatened reaches a human even without a harm word (safety rule 1)."""

from __future__ import annotations

import pytest

from nlp import Level, assess


@pytest.mark.parametrize(
    "text",
    [
        "我现在不安全",
        "我现在很危险 他在砸门",
        "現在我這裡很危險",
        "此刻我家不安全",
    ],
)
def test_not_safe_right_now_is_imminent(text: str) -> None:
    a = assess(text)
    assert a.level == Level.IMMINENT, a
    assert a.hits, "a volunteer must see what was flagged"


@pytest.mark.parametrize(
    "text",
    [
        "我不安全",
        "我家里不安全",
        "他要杀我",
        "有人想杀我",
        "他们要把我卖了",
        "他把我关起来了",
        "我被锁住了 出不去",
        "帮我报警",
        "怎么报警啊",
        "能不能帮我打110",
        "我想结束这一切",
        "救救我",
        "救命！！！",
        "I am not safe",
        "please help me",
        "he said he'd kill me",
        "she locked me in the bathroom",
        "call the police",
    ],
)
def test_plain_danger_or_a_plea_reaches_a_human(text: str) -> None:
    a = assess(text)
    assert a.needs_human, a


@pytest.mark.parametrize("text", ["我不敢回家", "我觉得不安全", "I'm scared to go home"])
def test_fear_without_specifics_is_recorded(text: str) -> None:
    assert assess(text).level == Level.ROUTINE, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "我不安全感很重 总怕他不喜欢我",
        "我数学很危险 期末要挂了",
        "湖南人说这个只是微辣 我要报警了",
        "救命 这题好难",
        "my mom is gonna kill me when she sees my grades",
        "can you help me with my homework",
        "家里的烟雾报警器一直响",
        "打死我也不吃香菜",
    ],
)
def test_everyday_uses_do_not_call_a_human(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


def test_a_plea_after_earlier_violence_is_imminent() -> None:
    a = assess("救救我", history=("我爸又喝醉了 在砸东西",))
    assert a.level == Level.IMMINENT, a


@pytest.mark.parametrize(
    "text",
    [
        "我吞了一瓶药",
        "我吞了很多药",
        "刚刚喝了农药",
        "他拿刀对着我",
        "我爸把我妈打晕了",
        "流了好多血 止不住",
        "我弟弟叫不醒",
        "家里着火了",
        "我被绑架了",
        "我晕倒了 没人在家",
    ],
)
def test_an_emergency_happening_now_is_imminent(text: str) -> None:
    assert assess(text).level == Level.IMMINENT, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "我怀孕了 我才14",
        "我哥晚上爬到我床上",
        "他们逼我下跪",
        "我从楼梯上摔下来 头流血",
    ],
)
def test_harm_without_a_harm_word_reaches_a_human(text: str) -> None:
    assert assess(text).needs_human, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "感冒了 吃了药就睡",
        "喝了一瓶可乐",
        "吃了一盒饼干",
        "气得我吐血",
        "我妈拿刀切西瓜",
        "厨房的火太大了 把锅烧糊了",
        "我一个人在家 好无聊",
    ],
)
def test_everyday_near_misses_stay_below_a_human(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


def test_a_pregnancy_is_recorded_and_a_young_one_reaches_a_human() -> None:
    assert assess("我怀孕了 怎么办").level == Level.ROUTINE
    assert assess("我怀孕了 怎么办", history=("我才13岁",)).needs_human


def test_many_pills_eaten_is_recorded_and_with_death_talk_reaches_a_human() -> None:
    assert assess("我吃了很多药").level == Level.ROUTINE  # a sick child takes medicine too
    assert assess("我感冒了，吃了好多药还是不好").level <= Level.ROUTINE
    assert assess("吃了很多药", history=("不想活了",)).needs_human
