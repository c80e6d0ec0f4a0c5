"""Fourth pass on issue 3, from the team's waves 9 (children 8-12) and 10 (teenagers online):
Cantonese, English clauses, countdown-free warning signs, exploitation said in a story."""

from __future__ import annotations

import pytest

from nlp import Level, assess, detector


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我而家喺天台 好想跳落去", Level.IMMINENT),
        ("媽媽走咗 鎖住我喺屋企 冇嘢食", Level.URGENT),
        ("佢哋而家喺廁所出面等我 話我一出去就打死我", Level.URGENT),
    ],
)
def test_cantonese_is_read_like_mandarin(text: str, expected: Level) -> None:
    assert assess(text).level >= expected, assess(text)


def test_english_signals_combine_across_a_longer_sentence() -> None:
    a = assess(
        "my dad is screaming and he broke my door. he said he is going to kill me. "
        "im under my bed right now"
    )
    assert a.level == Level.IMMINENT, a


def test_a_joke_marker_caps_a_threat_whatever_else_the_sentence_says() -> None:
    assert not assess(
        "my brother said he's gonna kill me for eating his chips, just kidding"
    ).needs_human
    assert assess("my brother said he's gonna kill me").needs_human
    # laughter is not a retraction: children laugh off what happened to them
    assert assess("my dad hit me with his belt again lol").needs_human
    assert assess("我爸又拿皮带抽我了 哈哈").needs_human


def test_a_resolution_lends_no_signal_to_the_conversation() -> None:
    a = assess("但已经一年多没有了 现在有心理老师陪我聊", history=("我之前划过手",))
    assert a.level == Level.URGENT, a  # the old cut keeps the conversation urgent, not imminent
    assert assess("我们班在排话剧 我演一个被拐卖的小孩 台词好难背").level <= Level.ROUTINE
    assert assess("今天老师讲了别人不能摸你的隐私部位 要告诉大人 男生都在笑").level <= Level.ROUTINE


@pytest.mark.parametrize(
    "text",
    [
        "我坐在窗户上 腿在外面",
        "药都倒出来了 一共三十七片",
        "吃了 一整板 现在有点困",
        "信放桌上了 给我妈发了句对不起",
        "我查了吃多少片会死",
        "我要把自己饿死",
        "我用圆规扎自己大腿",
        "我觉得我消失了大家都会开心一点",
        "我想去天上找奶奶",
        "老师问我胳膊上青的 我说摔的 其实是我妈拧的",
        "我的小狗被我爸摔死了 他说下次就是我",
        "游戏里的师傅要看我脚 后来要看别的地方",
        "有人往我喝的东西里放了东西 喝完就晕了",
        "我叔让我送货 说千万不能打开 也不能让警察看到",
        "老板说工资先压着 干了两个月一分没拿到",
        "我妈说给我定了亲 过完年就要过去",
        "有人把我的照片p成那种图发在贴吧",
        "他说明天晚上8点前不转钱就发",
        "我已经转了600 现在又要1200",
        "他们把我书包扔进垃圾桶",
        "全班都不跟我说话 已经一整个学期了",
    ],
)
def test_warning_signs_told_as_a_story_reach_a_human(text: str) -> None:
    assert assess(text).needs_human, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "今天去医院拔牙流了好多血 医生说没事",
        "今天学游泳差点淹死 教练一把把我捞起来了",
        "俾蚊咬咗十幾粒 痕到死",
        "今天我们玩狼人杀 我是狼 把所有人都杀了 我赢了",
        "剧里女二割腕那段拍得好假",
        "化学老师今天讲有机磷农药",
        "最后一把我用瑶挂在射手身上躺赢了",
        "我弟弟被狗咬了要去打狂犬疫苗",
        "想吃掉一整瓶巧克力",
    ],
)
def test_everyday_near_misses_of_the_fourth_pass(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


def test_wishing_an_overdose_is_urgent_but_taking_one_is_imminent() -> None:
    assert assess("想吃掉一整瓶安眠药").level == Level.URGENT
    assert assess("我吞了一整瓶安眠药").level == Level.IMMINENT


@pytest.mark.parametrize(
    "text",
    [
        "我妈说我再玩手机就打断我的腿 她从我三年级说到现在 腿还好好的",
        "我奶奶说我再不吃青菜就把我卖给收破烂的",
        "我要杀了我同桌 她把我的秘密告诉全班了",
        "在桥上看龙舟比赛 人好多 挤死了",
        "练跆拳道被踢到鼻子 流血了 教练说很正常",
        "咒回里那个角色死了我哭了一晚上 作者为什么要刀我们",
        "有人在游戏里说免费送皮肤 让我扫码 我没扫 是骗子吧",
        "初一的时候我划过手 现在初三了 好久没划了",
    ],
)
def test_wave_13_kinds_of_everyday_talk_stay_below_a_human(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


def test_refusing_does_not_hide_a_threat_or_a_real_beating() -> None:
    assert assess("他让我发照片 我没发 他说不发就把我之前的照片发到班群").needs_human
    # a request for nude images is solicitation of a child even when she blocked him
    assert assess("网友让我发裸照 我拉黑了他 他换号又来 说知道我学校").needs_human
    assert assess("他让我发照片 我没发 他就威胁我").categories[0] == "online_harm"
    assert assess("我爸说我再哭就打死我 上次他把我打进医院了").needs_human
    assert assess("他要杀了我 我好怕").needs_human


def test_gamer_slang_is_idiom_to_the_rules() -> None:
    rules_only = detector.Detector({"stage2": "off"})
    assert not rules_only.assess("跟我哥打游戏 他说要把我按在地上摩擦").needs_human
    assert rules_only.assess("他们把我按在地上打").needs_human


@pytest.mark.parametrize(
    "text",
    [
        "i've been cutting again and i hate myself for it",
        "i keep thinking about killing myself, not like a plan",
        "he makes me take off my shirt and says not to tell",
        "he says i'm mature for my age and wants to video call",
        "my uncle makes us sell flowers on the street every night, we dont go to school anymore",
        "我想让自己一点点消失 已经三天只喝水了",
        "我身上一直都有伤 同学都以为我是打篮球摔的",
        "有人在我桌上写婊子",
        "牙疼了一个月 我爸说花那个钱干嘛 忍着",
        "我只能吃他们剩的 瘦了十几斤",
        "他们叫我去操场后面 轮流拍我的头",
        "我妈出去打牌一整天不回 我弟尿不湿都没换",
        "今天我跪了一整节课 膝盖都破了",
        "宿舍的人又把我被子泼湿了",
    ],
)
def test_wave_12_kinds_of_disclosure_reach_a_human(text: str) -> None:
    assert assess(text).needs_human, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "i took a lot of pills, like 15 of my moms sleeping pills",
        "哈哈哈我决定了 今晚就跳 反正也没人在乎",
        "我哥给我的那个药我吃了两颗 现在心跳好快 手一直抖",
        "my little brother wont wake up properly",
    ],
)
def test_wave_12_kinds_of_emergency_are_imminent(text: str) -> None:
    assert assess(text).level == Level.IMMINENT, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "小时候跳房子 跳皮筋 现在跳的是跳槽",
        "为了彩礼跟我妈吵了一晚上 今晚吃火锅庆祝",
        "我弟把我的作业本撕了一页",
    ],
)
def test_wave_12_near_misses_stay_below_a_human(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "把微信里每个人都回了一遍谢谢 号等会也注销",
        "搜了好多 哪种方式不会疼",
        "胳膊上那些见不得人 热到不行也不能脱长袖",
        "洗澡的时候用很烫的水冲胳膊 冲到起泡",
        "吃多了就去厕所抠喉咙",
        "这次比较深 用纱布包了 不想去医院",
        "我奶奶走了以后 我经常想去找她",
        "世界上少我一个也不会怎样",
        "有时候觉得消失就好了",
        "有人建了个群 群名是我名字后面加去死两个字",
        "他们拿打火机烧我头发 说是开玩笑",
        "被他们关在储物柜里两节课",
        "她们把我的卫生巾贴在黑板上",
        "补习班老师总说我发育得好 上课的时候手放我腿上",
        "俺爹说念书没用 让俺初中不念了",
        "我爸妈给我说了个人家 让我明年开春就过去",
        "班主任当着全班把我的头往黑板上磕",
        "i keep thinking everyone would be fine without me",
        "ive been burning my arm with a lighter",
    ],
)
def test_wave_14_and_15_kinds_of_disclosure_reach_a_human(text: str) -> None:
    assert assess(text).needs_human, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "我等下就不在了 帮我照顾它",
        "我把今天的药全吞了",
        "屋里有股煤气味 门是从外面锁的",
        "组长叫我今晚一个人去他宿舍 说不去就扣工资",
        "宿管说等熄了灯就来收拾我 他上学期把一个男生打进了医院 还有十分钟熄灯",
    ],
)
def test_wave_14_and_15_kinds_of_emergency_are_imminent(text: str) -> None:
    assert assess(text).level == Level.IMMINENT, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "【安全提示】燃气泄漏时不要开关电器 立即开窗通风",
        "他们说只是开玩笑 我也笑了",
        "我家猫今天打疫苗了",
    ],
)
def test_wave_14_and_15_near_misses_stay_below_a_human(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


def test_a_pets_care_arranged_is_recorded_and_with_a_goodbye_imminent() -> None:
    assert assess("你们能不能帮我照顾一下我的仓鼠 它叫团子").level == Level.ROUTINE
    assert assess("帮我照顾一下我的仓鼠 我等下就不在了").level == Level.IMMINENT


@pytest.mark.parametrize(
    "text",
    [
        "他说敢告诉老师就打死我",
        "军训的时候被教官打",
        "爸爸喝醉了就打我们",
        "他每天都打我同时还骂我",
        "我爸说要杀了我妈",
        "我没开玩笑，他真的打我了",
        "他说我再告诉老师就打死我",  # a threat to keep a secret is never a parent's idiom
        "他要杀了我 同学都看见了",  # a break after 我: the classmate is not owned by it
        "他说要杀了我 朋友都不信",
    ],
)
def test_review_threats_and_beatings_that_the_masks_must_not_hide(text: str) -> None:
    assert assess(text).needs_human, assess(text)


@pytest.mark.parametrize(
    "text",
    [
        "感冒药都吃了",
        "轮胎没气了",
        "差点晕过去了",
        "I took 2 pills for my headache",
        "I won't wake up early tomorrow",
        "在栏杆上压腿",
        "又多了两道题",
        "作业做完就舒服多了",
        "痘痘消失了就好了",
        "洗澡的时候看手机",
        "妈妈给我买了好东西",
        "开会要共享屏幕",
        "她是老师最喜欢的学生",
        "摸到桌子下面",
        "高数被挂了",
        "ps了一张照片",
        "我妈打的毛衣",
        "从楼梯上摔下来了",
        "小号注销了",
        "I hurt my leg",
        "I don't go to school on Saturday",
        "路过门口",
    ],
)
def test_review_everyday_phrases_stay_below_a_human(text: str) -> None:
    assert not assess(text).needs_human, assess(text)


def test_a_last_goodbye_to_the_dead_is_mourning_not_a_plan() -> None:
    assert not assess("奶奶去世了 我没见到最后一面 我好恨自己").needs_human


def test_idiom_is_read_clause_by_clause() -> None:
    # the leftmost 再…就 spans the break and cannot mask; the one inside the second clause can
    assert not assess("我妈说我再玩 明天再玩手机就打断我的腿").needs_human
    assert assess("累 想死").needs_human  # and no mask reaches across a break
