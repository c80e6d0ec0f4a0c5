"""The shipped intake scripts: valid, the same shape in every language, and safe by design."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogs import ScriptLibrary, validate
from dialogs.library import SCRIPTS_DIR
from dialogs.model import Script

FILES = sorted(SCRIPTS_DIR.glob("intake.*.yaml"))


@pytest.fixture(scope="module")
def scripts() -> dict[str, Script]:
    lib = ScriptLibrary.load_dir()
    return {lang: lib.script("intake", lang) for lang in lib.languages("intake")}


def test_three_languages_ship() -> None:
    assert [f.name for f in FILES] == ["intake.en.yaml", "intake.zh-CN.yaml", "intake.zh-TW.yaml"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shipped_script_validates(path: Path) -> None:
    assert validate(path) == []


def shape(script: Script) -> dict[str, tuple[object, ...]]:
    """Everything but the wording: states, option values, slots, transitions, actions."""
    return {
        name: (
            tuple(o.value for o in st.all_options),
            st.capture,
            tuple(sorted(st.on.items())),
            st.on_text,
            st.next,
            tuple(sorted((st.on_risk or {}).items())),
            st.actions,
        )
        for name, st in script.states.items()
    }


def test_translations_have_the_same_shape(scripts: dict[str, Script]) -> None:
    base = scripts["zh-CN"]
    for lang in ("zh-TW", "en"):
        other = scripts[lang]
        assert shape(other) == shape(base), lang
        assert list(other.slot_labels) == list(base.slot_labels)
        assert (other.start, other.on_risk) == (base.start, base.on_risk)


def test_never_asks_for_name_school_or_phone(scripts: dict[str, Script]) -> None:
    for script in scripts.values():
        captured = {st.capture for st in script.states.values() if st.capture}
        assert captured <= {"about", "kind", "story", "question", "when", "where"}


def test_danger_shows_numbers_before_asking_a_person(scripts: dict[str, Script]) -> None:
    for script in scripts.values():
        danger = script.states["danger"]
        assert danger.actions == ("emergency", "request_human")
        said = " ".join(danger.say)
        assert "110" in said and "120" in said
        assert "12355" in " ".join(script.states["goodbye"].say)


def test_option_values_are_short_ascii(scripts: dict[str, Script]) -> None:
    for script in scripts.values():
        for st in script.states.values():
            for opt in st.all_options:
                assert opt.value.isascii() and len(opt.value) <= 16


def test_format_md_example_validates() -> None:
    doc = (SCRIPTS_DIR.parent / "FORMAT.md").read_text(encoding="utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert validate(example) == []
