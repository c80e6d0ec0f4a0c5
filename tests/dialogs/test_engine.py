"""The engine walks conversations through scripts the way a child would experience them."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs import DialogEngine, DialogState, ScriptLibrary, Step, is_lead_code
from dialogs.compiled import CALLBACKS
from nlp.types import Level
from tests.dialogs.helpers import MINI


@pytest.fixture(scope="module")
def library() -> ScriptLibrary:
    return ScriptLibrary.load_dir()


@pytest.fixture
def engine(library: ScriptLibrary) -> DialogEngine:
    return DialogEngine(library)


def stored(state: DialogState) -> DialogState:
    """The state as the database gives it back: through JSON and a plain dict."""
    return DialogState(**json.loads(json.dumps(asdict(state))))


def say(engine: DialogEngine, step: Step, text: str, level: Level = Level.NONE) -> Step:
    """One child message on a state that went through the database."""
    return engine.step(stored(step.state), text, level)


def texts(step: Step) -> str:
    return "\n".join(r.text for r in step.replies)


def actions(step: Step) -> list[str]:
    return [a.name for a in step.actions]


def test_full_zh_cn_intake(engine: DialogEngine) -> None:
    s = engine.start()
    assert "名字" in texts(s) and "学校" in texts(s) and "电话" in texts(s)
    assert s.state.state == "safe" and s.replies[-1].options
    s = say(engine, s, "1")  # by number: 我现在安全
    assert s.state.state == "about"
    s = say(engine, s, "我自己")  # by label
    assert s.state.state == "kind" and s.state.slots["about"] == "me"
    s = say(engine, s, "bully")  # by value
    assert s.state.state == "story"
    s = say(engine, s, "他们总是抢我的东西")  # free text
    assert s.state.slots["story"] == "他们总是抢我的东西"
    s = say(engine, s, "２")  # full-width number
    assert s.state.state == "where" and s.state.slots["when"] == "recent"
    assert [o.value for o in s.replies[-1].options] == ["skip"]
    s = say(engine, s, "跳过")
    assert s.state.state == "talk" and "where" not in s.state.slots
    s = say(engine, s, "先不用")
    assert s.state.state == "summary"
    summary = texts(s)
    for part in ("我自己", "被欺负", "他们总是抢我的东西", "这几天"):
        assert part in summary
    assert "大概在哪里" not in summary  # skipped, so not read back
    assert [o.value for o in s.replies[-1].options] == ["ok", "fix"]
    s = say(engine, s, "要改一下")
    assert s.state.state == "retell"
    s = say(engine, s, "他们抢了我的书包，还推我")
    assert s.state.state == "summary" and "还推我" in texts(s)
    assert not s.actions and not s.finished
    s = say(engine, s, "对的")
    assert actions(s) == ["create_lead", "end"] and s.finished
    code = s.actions[0].args["lead_code"]
    assert is_lead_code(code) and s.state.slots["lead_code"] == code
    assert code in texts(s) and "12355" in texts(s)
    # A message after the end still gets an answer, and the code does not change.
    again = say(engine, s, "我的号码是什么？")
    assert again.finished and code in texts(again) and not again.actions


def test_not_safe_shows_110_120_then_asks_a_person(engine: DialogEngine) -> None:
    s = say(engine, engine.start(), "不安全")
    assert actions(s) == ["emergency", "request_human"]
    assert s.actions[0].args["numbers"] == ["110", "120"]
    assert "110" in texts(s) and "120" in texts(s)
    assert s.state.state == "waiting"
    s = say(engine, s, "他还在门外")
    assert s.state.slots["story"] == "他还在门外" and s.replies


def test_self_harm_goes_to_a_caring_branch_that_offers_a_person(engine: DialogEngine) -> None:
    s = engine.start()
    for text in ("yes", "me", "我想伤害自己"):
        s = say(engine, s, text)
    assert s.state.state == "care" and not s.actions
    assert [o.value for o in s.replies[-1].options] == ["yes", "no"]
    s = say(engine, s, "好")
    assert actions(s) == ["request_human"]


def test_question_path_offers_a_person(engine: DialogEngine) -> None:
    s = engine.start()
    for text in ("yes", "question", "被打了可以报警吗"):
        s = say(engine, s, text)
    assert s.state.slots["question"] == "被打了可以报警吗"
    assert [o.value for o in s.replies[-1].options] == ["yes", "no"]
    assert actions(say(engine, s, "yes")) == ["request_human"]


def test_unexpected_text_runs_the_fallback_and_asks_again(engine: DialogEngine) -> None:
    s = engine.start()
    f = say(engine, s, "嗯嗯？")
    assert f.state == stored(s.state)
    assert "没太看懂" in f.replies[0].text
    assert f.replies[-1].text == s.replies[-1].text and f.replies[-1].options
    assert not f.actions and not f.finished
    # A number outside the options is not an option either.
    assert say(engine, s, "9").state.state == "safe"
    # Empty text on a free-text question re-asks instead of storing nothing.
    story = s
    for text in ("yes", "me", "bully"):
        story = say(engine, story, text)
    e = say(engine, story, "   ")
    assert e.state.state == "story" and "story" not in e.state.slots and e.replies


def test_on_risk_moves_to_the_risk_state_and_keeps_the_text(engine: DialogEngine) -> None:
    s = engine.start()
    for text in ("yes", "me", "home"):
        s = say(engine, s, text)
    urgent = say(engine, s, "爸爸天天打我", Level.URGENT)
    assert actions(urgent) == ["request_human"]
    assert urgent.state.state == "when" and urgent.state.slots["story"] == "爸爸天天打我"
    imminent = say(engine, s, "他拿着刀", Level.IMMINENT)
    assert actions(imminent) == ["emergency", "request_human"]
    # The script-wide default (imminent -> danger) applies where a state has no on_risk.
    about = say(engine, engine.start(), "yes")
    assert actions(say(engine, about, "1", Level.IMMINENT)) == ["emergency", "request_human"]
    # Urgent has no default: the option is taken normally (the pipeline does its own handoff).
    assert say(engine, about, "1", Level.URGENT).state.state == "kind"


def test_languages_and_unknown_lang_fallback(engine: DialogEngine, library: ScriptLibrary) -> None:
    assert library.languages("intake") == ["en", "zh-CN", "zh-TW"]
    assert "name" in texts(engine.start(lang="en"))
    assert "學校" in texts(engine.start(lang="zh-TW"))
    fr = engine.start(lang="fr")
    assert fr.state.lang == "zh-CN" and "学校" in texts(fr)
    # English options match by label too, case-insensitively.
    assert say(engine, engine.start(lang="en"), "i'm SAFE now").state.state == "about"


def test_options_of_current_state(engine: DialogEngine) -> None:
    s = engine.start()
    assert [o.value for o in engine.options(s.state)] == ["yes", "no", "unsure"]


def test_unknown_script_in_a_stored_state_restarts_on_the_default(engine: DialogEngine) -> None:
    gone = DialogState("deleted_script", "zh-CN", "abc", "nowhere", {})
    s = engine.step(gone, "hi")
    assert s.state.script_id == "intake" and s.state.state == "safe" and s.replies


def test_version_pinning_and_fallback_to_current() -> None:
    lib = ScriptLibrary()
    _, _, v1 = lib.add_text(MINI)
    engine = DialogEngine(lib)
    old = engine.step(engine.start("mini").state, "yes")
    assert old.state.state == "story" and old.state.version == v1
    v2_text = MINI.replace("说说发生了什么。", "新版本：说说发生了什么。")
    _, _, v2 = lib.add_text(v2_text)
    assert v2 != v1 and lib.current_version("mini", "zh-CN") == v2
    assert engine.start("mini").state.version == v2
    # The old conversation stays on the version it started on.
    done = engine.step(stored(old.state), "我被欺负了")
    assert done.state.version == v1 and done.finished
    # After a restart only v2 is loaded: same state name -> carry on there, on v2.
    lib2 = ScriptLibrary()
    lib2.add_text(v2_text)
    moved = DialogEngine(lib2).step(stored(old.state), "我被欺负了")
    assert moved.state.version == v2 and moved.finished
    assert moved.state.slots["story"] == "我被欺负了"
    # A state the new version lacks: start over from the greeting, never raise.
    lost = DialogState("mini", "zh-CN", v1, "no_such_state", {"story": "x"})
    again = DialogEngine(lib2).step(lost, "hello")
    assert again.state.state == "ask" and again.replies and again.state.version == v2


def test_each_version_is_compiled_once() -> None:
    lib = ScriptLibrary()
    sid, lang, version = lib.add_text(MINI)
    engines = [DialogEngine(lib), DialogEngine(lib)]
    for engine in engines:
        for _ in range(5):
            s = engine.start("mini")
            engine.step(engine.step(stored(s.state), "no").state, "故事")
    assert lib.compile_count == 1
    assert lib.compiled(sid, lang, version) is lib.compiled(sid, lang, version)
    lib.add_text(MINI + "# v2\n")
    DialogEngine(lib).start("mini")
    assert lib.compile_count == 2


def test_machine_only_holds_whitelisted_callbacks(library: ScriptLibrary) -> None:
    compiled = library.compiled("intake", "zh-CN", library.current_version("intake", "zh-CN"))
    allowed = list(compiled.callbacks.values())
    assert tuple(compiled.callbacks) == CALLBACKS
    seen = []
    for state in compiled.machine.states.values():
        seen += state.on_enter + state.on_exit
    for event in compiled.machine.events.values():
        for transitions in event.transitions.values():
            for t in transitions:
                seen += t.before + t.after + t.prepare + [c.func for c in t.conditions]
    assert seen and all(cb in allowed for cb in seen)  # no strings to import
    m = compiled.machine
    extra = [m.prepare_event, m.before_state_change, m.after_state_change, m.finalize_event]
    assert all(not cbs for cbs in extra)


def test_conversations_do_not_share_slots(engine: DialogEngine) -> None:
    a = engine.start()
    b = engine.start()
    for text in ("yes", "me", "bully"):
        a = say(engine, a, text)
        b = say(engine, b, text)
    a = say(engine, a, "A 的事")
    b = say(engine, b, "B 的事")
    assert a.state.slots["story"] == "A 的事" and b.state.slots["story"] == "B 的事"
    assert "B 的事" not in texts(say(engine, a, "today"))


def test_lead_codes_are_not_reused_between_conversations(engine: DialogEngine) -> None:
    codes = set()
    for _ in range(20):
        s = engine.start()
        for text in ("yes", "question", "?", "no", "ok"):
            s = say(engine, s, text)
        assert s.finished
        codes.add(s.state.slots["lead_code"])
    assert len(codes) == 20


def test_option_matching_rules() -> None:
    from dialogs import Option, match_option

    opts = (Option("我现在安全", "yes"), Option("我不安全", "no"), Option("我不知道", "unsure"))
    assert match_option(opts, " YES ") == opts[0]
    assert match_option(opts, "我不安全！") == opts[1]
    assert match_option(opts, "３") == opts[2]
    assert match_option(opts, "不知道") == opts[2]  # part of exactly one label
    assert match_option(opts, "安全") is None  # part of two labels: ambiguous
    assert match_option(opts, "0") is None and match_option(opts, "4") is None
    assert match_option(opts, "") is None


_WORDS = ["yes", "no", "1", "2", "７", "me", "question", "self_harm", "skip", "ok", "fix", "", "？"]


@given(
    lang=st.sampled_from(["zh-CN", "zh-TW", "en", "xx"]),
    turns=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(_WORDS), st.text(max_size=40)),
            st.sampled_from(list(Level)),
        ),
        max_size=25,
    ),
)
@settings(max_examples=150, deadline=None)
def test_every_message_gets_an_answer(lang: str, turns: list[tuple[str, Level]]) -> None:
    engine = DialogEngine(_LIB)
    s = engine.start(lang=lang)
    assert s.replies
    for text, level in turns:
        s = say(engine, s, text, level)
        assert s.replies and all(r.text.strip() for r in s.replies)
        assert s.state.state in _LIB.script("intake", s.state.lang).states


_LIB = ScriptLibrary.load_dir()
