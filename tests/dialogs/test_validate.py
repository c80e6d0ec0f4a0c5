"""The validator names the right problem, state and line for each kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogs import ScriptError, ScriptLibrary, validate
from dialogs.errors import ScriptProblem
from tests.dialogs.helpers import MINI, line_of


def only(problems: list[ScriptProblem], code: str) -> ScriptProblem:
    """The single problem of this kind (fails if there are none or several)."""
    found = [p for p in problems if p.code == code]
    assert len(found) == 1, problems
    return found[0]


def test_minimal_script_is_valid() -> None:
    assert validate(MINI) == []


def test_yaml_syntax_error_has_line() -> None:
    text = MINI.replace("    say: 说说发生了什么。", "    say: [说说发生了什么。")
    problems = validate(text)
    assert [p.code for p in problems] == ["yaml_syntax"]
    assert problems[0].line is not None
    assert line_of(text, "[说说") <= problems[0].line <= line_of(text, "[说说") + 3


def test_unknown_key_and_wrong_type() -> None:
    text = MINI.replace("    on_text: bye", "    on_txt: bye\n    on_text: [bye]")
    problems = validate(text)
    unknown = only(problems, "unknown_key")
    assert (unknown.state, unknown.line) == ("story", line_of(text, "on_txt"))
    assert "on_txt" in unknown.message
    wrong = only(problems, "wrong_type")
    assert (wrong.state, wrong.line) == ("story", line_of(text, "on_text: [bye]"))


def test_duplicate_key_is_reported_not_silently_overwritten() -> None:
    text = MINI.replace("    on_text: bye", "    on_text: bye\n    on_text: ask")
    p = only(validate(text), "duplicate_key")
    assert p.line == line_of(text, "on_text: ask")


def test_unknown_target_names_state_and_line() -> None:
    text = MINI.replace('"no": human', '"no": humn')
    p = only(validate(text), "unknown_target")
    assert (p.state, p.line) == ("ask", line_of(text, "humn"))
    assert "humn" in p.message


def test_unknown_start() -> None:
    text = MINI.replace("start: ask", "start: asc")
    p = only(validate(text), "unknown_target")
    assert p.line == line_of(text, "start: asc")


def test_unreachable_state() -> None:
    text = MINI + "  orphan:\n    say: 没人来这里。\n    next: bye\n"
    p = only(validate(text), "unreachable")
    assert (p.state, p.line) == ("orphan", line_of(text, "orphan:"))


def test_state_with_no_way_out() -> None:
    text = MINI.replace(
        "    actions: [request_human]\n    next: story\n", "    actions: [request_human]\n"
    )
    p = only(validate(text), "no_way_out")
    assert (p.state, p.line) == ("human", line_of(text, "  human:"))


def test_free_text_with_no_fallback() -> None:
    text = MINI.replace("fallback: 没看懂。\n", "")
    p = only(validate(text), "no_fallback")
    assert (p.state, p.line) == ("ask", line_of(text, "  ask:"))
    # A state-level fallback is enough.
    text2 = text.replace("    say: 你安全吗？", "    say: 你安全吗？\n    fallback: 请点按钮。")
    assert validate(text2) == []


def test_no_reachable_request_human() -> None:
    text = MINI.replace("    actions: [request_human]\n", "")
    p = only(validate(text), "no_human")
    assert p.line == line_of(text, "start: ask")


def test_path_that_never_offers_a_person() -> None:
    # "yes" now ends at once; only "no" leads to a person, so ask still offers one...
    ok = MINI.replace('"yes": story', '"yes": bye')
    assert validate(ok) == []
    # ...but put a question in front whose one branch skips the ask entirely.
    text = ok.replace("start: ask", "start: first") + (
        "  first:\n    say: 开始吗？\n    options:\n      - {label: 好, value: go}\n"
        "      - {label: 不, value: stop}\n    on:\n      go: ask\n      stop: bye\n"
    )
    p = only(validate(text), "no_human_path")
    assert p.state == "bye"
    assert "first → bye" in p.message


def test_unknown_action_names_line() -> None:
    text = MINI.replace("actions: [request_human]", "actions: [request_human, call_mum]")
    p = only(validate(text), "unknown_action")
    assert (p.state, p.line) == ("human", line_of(text, "call_mum"))


def test_template_with_unknown_slot() -> None:
    text = MINI.replace("说说发生了什么。", "你好{nmae}，说说发生了什么。")
    p = only(validate(text), "unknown_slot")
    assert (p.state, p.line) == ("story", line_of(text, "{nmae}"))


def test_template_stray_brace_and_lead_code_without_create_lead() -> None:
    text = MINI.replace("说说发生了什么。", "说说{发生了什么。").replace(
        '"再见。{summary}"', '"再见。{lead_code}"'
    )
    problems = validate(text)
    assert only(problems, "bad_template").state == "story"
    assert "create_lead" in only(problems, "unknown_slot").message


def test_next_cycle_is_refused() -> None:
    text = MINI + "  a:\n    say: A\n    next: b\n  b:\n    say: B\n    next: a\n"
    text = text.replace('"no": human', '"no": a')
    problems = validate(text)
    assert only(problems, "next_cycle").state in {"a", "b"}


@pytest.mark.parametrize(
    "snippet",
    [
        "    on_enter: os.system\n",
        "    before: os.system\n",
        "    actions: [os.system]\n",
    ],
)
def test_callback_names_from_scripts_are_refused(snippet: str) -> None:
    text = MINI.replace("    capture: story\n", "    capture: story\n" + snippet)
    problems = validate(text)
    assert problems, "a script naming os.system must not validate"
    assert all(p.state == "story" for p in problems)
    with pytest.raises(ScriptError):
        ScriptLibrary().add_text(text)


def test_dotted_state_name_is_refused() -> None:
    text = MINI.replace('"no": human', '"no": os.system')
    problems = validate(text)
    assert {p.code for p in problems} >= {"bad_name"}


def test_yes_no_stay_strings_not_yaml_booleans() -> None:
    # Unquoted yes/no/on would be booleans in YAML 1.1; the parser keeps what was written.
    text = MINI.replace('value: "yes"', "value: yes").replace('"yes": story', "yes: story")
    assert validate(text) == []


def test_validate_reads_a_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINI.replace('"no": human', '"no": humn'), encoding="utf-8")
    problems = validate(bad)
    assert problems and problems[0].source == str(bad)
    target = next(p for p in problems if p.code == "unknown_target")
    assert str(target).startswith(f"{bad}:{target.line}:") and "'ask'" in str(target)
    assert validate(str(bad)) == problems


def test_load_dir_refuses_a_folder_with_one_bad_script(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(MINI, encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(
        MINI.replace("id: mini", "id: other").replace('"no": human', '"no": humn'),
        encoding="utf-8",
    )
    with pytest.raises(ScriptError) as err:
        ScriptLibrary.load_dir(tmp_path)
    assert "bad.yaml" in str(err.value) and "humn" in str(err.value)


def test_load_dir_refuses_two_files_with_same_id_and_lang(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MINI, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(MINI + "# edited\n", encoding="utf-8")
    with pytest.raises(ScriptError, match="duplicate_script"):
        ScriptLibrary.load_dir(tmp_path)
