"""Steps one conversation through its script: match input, fire the machine, collect effects."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from dialogs.compiled import BEGIN, CompiledScript, Turn
from dialogs.errors import UnknownScript
from dialogs.library import ScriptLibrary
from dialogs.model import StateSpec
from dialogs.types import DialogState, Option, Step
from nlp.types import Level

DEFAULT_SCRIPT = "intake"
_TRIM = " \t\r\n\u3000。．.!！?？,，、~～"


def normalise(text: str) -> str:
    """Width-folded, case-folded, trimmed text for matching options ('２' -> '2')."""
    return unicodedata.normalize("NFKC", text).casefold().strip(_TRIM)


def match_option(options: tuple[Option, ...], text: str) -> Option | None:
    """The option a text picks: by value, label, 1-based number, or a part of one label."""
    key = normalise(text)
    if not key:
        return None
    for opt in options:
        if key == opt.value.casefold() or key == normalise(opt.label):
            return opt
    if key.isdecimal():
        return options[int(key) - 1] if 1 <= int(key) <= len(options) else None
    # A part of exactly one label ("不安全" for "我不安全"); ambiguous parts pick nothing.
    if len(key) >= 2:
        partial = [opt for opt in options if key in normalise(opt.label)]
        if len(partial) == 1:
            return partial[0]
    return None


def risk_key(targets: Mapping[str, str], level: Level) -> str | None:
    """The on_risk key that applies at this level: imminent first, then urgent."""
    if level >= Level.IMMINENT and "imminent" in targets:
        return "imminent"
    if level >= Level.URGENT and "urgent" in targets:
        return "urgent"
    return None


class DialogEngine:
    """Starts and steps conversations on the scripts of a ScriptLibrary. No I/O."""

    def __init__(self, library: ScriptLibrary) -> None:
        self.library = library

    def _compiled(self, script_id: str, lang: str, version: str | None = None) -> CompiledScript:
        """Compiled script for an id/lang (lang falls back), pinned version if still loaded."""
        lib = self.library
        if not lib.languages(script_id):
            raise UnknownScript(script_id)
        lang = lib.pick_lang(script_id, lang)
        if version is None or not lib.has_version(script_id, lang, version):
            version = lib.current_version(script_id, lang)
        return lib.compiled(script_id, lang, version)

    def start(self, script_id: str = DEFAULT_SCRIPT, lang: str = "zh-CN") -> Step:
        """A new conversation: the greeting replies and the first state that waits."""
        return self._begin(self._compiled(script_id, lang), {})

    def _begin(self, compiled: CompiledScript, slots: dict[str, object]) -> Step:
        turn = Turn(slots)
        with compiled.bound(turn, BEGIN) as model:
            compiled.fire(model, "begin")
        return self._result(compiled, turn)

    def step(self, state: DialogState, text: str, level: Level = Level.NONE) -> Step:
        """One inbound message: its replies, actions and the new state. Never a dead end."""
        script_id = state.script_id
        if not self.library.languages(script_id):
            script_id = DEFAULT_SCRIPT  # the script was removed: start over on the default
        compiled = self._compiled(script_id, state.lang, state.version)
        spec = compiled.script.states.get(state.state)
        if spec is None:
            # Pinned to a state the current version lacks: start again (slots kept).
            return self._begin(compiled, dict(state.slots))
        turn = Turn(state.slots)
        with compiled.bound(turn, spec.name) as model:
            trigger, kwargs = self._choose(compiled, spec, text, level)
            compiled.fire(model, trigger, **kwargs)
        return self._result(compiled, turn)

    def _choose(
        self, compiled: CompiledScript, st: StateSpec, text: str, level: Level
    ) -> tuple[str, dict[str, str]]:
        """Which trigger this input fires in this state, and its arguments."""
        if st.terminal:
            return "again", {}
        if not st.waits:
            return "next", {}  # resumed in a pass-through state: carry on
        clean = text.strip()
        opt = match_option(st.all_options, clean)
        risk = risk_key(compiled.script.risk_targets(st), level)
        if risk is not None:
            # Keep what the child wrote when this state takes free text.
            return f"risk:{risk}", ({"text": clean} if opt is None and clean else {})
        if opt is not None and (opt.value in st.on or st.on_text):
            return f"opt:{opt.value}", {"value": opt.value}
        if clean and st.on_text:
            return "text", {"text": clean}
        return "fallback", {}

    def options(self, state: DialogState) -> tuple[Option, ...]:
        """The quick replies of the conversation's current state."""
        try:
            compiled = self._compiled(state.script_id, state.lang, state.version)
        except UnknownScript:
            return ()
        spec = compiled.script.states.get(state.state)
        return spec.all_options if spec is not None else ()

    def _result(self, compiled: CompiledScript, turn: Turn) -> Step:
        script_id, lang, version = compiled.key
        name = turn.state  # type: ignore[attr-defined]
        new = DialogState(script_id, lang, version, name, dict(turn.slots))
        finished = turn.finished or compiled.script.states[name].terminal
        return Step(tuple(turn.replies), tuple(turn.actions), new, finished)
