"""A validated script compiled once into a `transitions` Machine, and the per-turn model.

Only the callbacks in CALLBACKS (bound methods of CompiledScript) are ever given to the
machine: never a name from a script, since `transitions` imports any dotted string it is given.
The callbacks do no I/O; they record replies and actions on the turn for the caller to commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from transitions import EventData, Machine, State

from dialogs.leadcode import is_lead_code, new_lead_code
from dialogs.model import SKIP_VALUE, Script, StateSpec
from dialogs.render import option_labels, render
from dialogs.types import Action, Reply

BEGIN = "_begin"  # script state names cannot start with "_", so this never clashes
EMERGENCY_NUMBERS = ("110", "120")
MAX_AUTO_STEPS = 64  # defence in depth; the validator already refuses `next` loops

# The whitelist: every callback the machine can run, by the name used in docs and tests.
CALLBACKS: tuple[str, ...] = ("enter", "store_option", "capture", "fallback", "again")


class Turn:
    """The model one turn runs on: current state, slots, and the effects recorded so far."""

    def __init__(self, slots: Mapping[str, Any]) -> None:
        self.slots: dict[str, Any] = dict(slots)
        self.replies: list[Reply] = []
        self.actions: list[Action] = []
        self.finished = False


def _turn(event: EventData) -> Turn:
    """The turn a callback runs for (the machine only ever holds Turn models)."""
    model = event.model
    assert isinstance(model, Turn)
    return model


class CompiledScript:
    """One (script id, lang, version) as a transitions Machine shared by all conversations."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.labels = option_labels(script)
        self.callbacks: dict[str, Callable[[EventData], None]] = {
            "enter": self._enter,
            "store_option": self._store_option,
            "capture": self._capture,
            "fallback": self._fallback,
            "again": self._again,
        }
        assert tuple(self.callbacks) == CALLBACKS
        self.machine = self._build()
        # One resident model is shared by every turn on this script: a turn run in a worker
        # thread must not interleave with another on the same script.
        self._lock = threading.Lock()
        self._resident = Turn({})
        self.machine.add_model(self._resident, initial=BEGIN)

    @property
    def key(self) -> tuple[str, str, str]:
        """(script id, lang, version)."""
        return self.script.id, self.script.lang, self.script.version

    def _build(self) -> Machine:
        """States with the `enter` callback; one trigger per kind of input."""
        cb = self.callbacks
        states = [State(BEGIN)] + [
            State(name, on_enter=[cb["enter"]]) for name in self.script.states
        ]
        m = Machine(
            model=None,
            states=states,
            initial=BEGIN,
            auto_transitions=False,
            send_event=True,
            name=f"{self.script.id}/{self.script.lang}/{self.script.version}",
        )
        m.add_transition("begin", BEGIN, self.script.start)
        for st in self.script.states.values():
            for opt in st.all_options:
                target = st.on.get(opt.value) or st.on_text
                if target:
                    m.add_transition(
                        f"opt:{opt.value}", st.name, target, before=[cb["store_option"]]
                    )
            if st.on_text:
                m.add_transition("text", st.name, st.on_text, before=[cb["capture"]])
            for level, target in self.script.risk_targets(st).items():
                m.add_transition(f"risk:{level}", st.name, target, before=[cb["capture"]])
            if st.next and not st.waits:
                m.add_transition("next", st.name, st.next)
            if st.waits:
                m.add_transition("fallback", st.name, None, after=[cb["fallback"]])
            m.add_transition("again", st.name, None, after=[cb["again"]])
        return m

    @contextmanager
    def bound(self, turn: Turn, state: str) -> Iterator[Turn]:
        """Run a turn on the machine at `state`; yields the model to fire triggers on.

        The machine keeps one resident model: putting a turn's data on it and setting its
        state is cheap, whereas add_model/remove_model per turn rebuilt every trigger method
        (the costliest step of a web chat message). The turn gets the results back.
        """
        with self._lock:
            model = self._resident
            model.slots, model.replies, model.actions = turn.slots, turn.replies, turn.actions
            model.finished = turn.finished
            self.machine.set_state(state, model=model)
            try:
                yield model
            finally:
                turn.slots, turn.replies, turn.actions = model.slots, model.replies, model.actions
                turn.finished = model.finished
                turn.state = model.state  # type: ignore[attr-defined]

    def fire(self, turn: Turn, trigger: str, **kwargs: Any) -> None:
        """Fire one trigger, then follow automatic `next` transitions."""
        turn.trigger(trigger, **kwargs)  # type: ignore[attr-defined]
        for _ in range(MAX_AUTO_STEPS):
            st = self.script.states[turn.state]  # type: ignore[attr-defined]
            if st.waits or st.terminal or not st.next:
                break
            turn.trigger("next")  # type: ignore[attr-defined]

    def spec(self, turn: Turn) -> StateSpec:
        """The state the turn is in."""
        return self.script.states[turn.state]  # type: ignore[attr-defined]

    def render(self, slots: Mapping[str, Any], text: str) -> str:
        """A text with its slots filled in."""
        return render(self.script, self.labels, slots, text)

    def say(self, turn: Turn, st: StateSpec, texts: tuple[str, ...] | None = None) -> None:
        """Record a state's texts as replies; its options go with the last one."""
        texts = st.say if texts is None else texts
        for i, text in enumerate(texts):
            last = i == len(texts) - 1
            opts = st.all_options if last else ()
            rendered = self.render(turn.slots, text)
            if rendered.strip() or opts:  # e.g. an empty {summary}: say nothing, not ""
                turn.replies.append(Reply(rendered, opts))

    # -- the whitelisted callbacks ---------------------------------------------------------

    def _enter(self, event: EventData) -> None:
        """Entering a state: run create_lead first (so the text can show the code), then say."""
        turn = _turn(event)
        st = self.spec(turn)
        if "create_lead" in st.actions:
            code = turn.slots.get("lead_code")
            if not (isinstance(code, str) and is_lead_code(code)):
                code = new_lead_code()
                turn.slots["lead_code"] = code
        self.say(turn, st)
        for name in st.actions:
            turn.actions.append(Action(name, self._args(name, st, turn)))
        if st.terminal:
            turn.finished = True

    def _args(self, name: str, st: StateSpec, turn: Turn) -> dict[str, Any]:
        """JSON-friendly arguments of an action."""
        args: dict[str, Any] = {"state": st.name}
        if name == "create_lead":
            args["lead_code"] = turn.slots["lead_code"]
        elif name == "emergency":
            args["numbers"] = list(EMERGENCY_NUMBERS)
        return args

    def _store_option(self, event: EventData) -> None:
        """A chosen option: its value goes into the captured slot (skip empties the slot)."""
        turn = _turn(event)
        st = self.spec(turn)
        value = event.kwargs.get("value")
        if st.capture and value is not None:
            if value == SKIP_VALUE and st.skippable is not None:
                turn.slots.pop(st.capture, None)
            else:
                turn.slots[st.capture] = value

    def _capture(self, event: EventData) -> None:
        """Free text goes into the captured slot."""
        turn = _turn(event)
        st = self.spec(turn)
        text = event.kwargs.get("text")
        if st.capture and st.on_text and text:
            turn.slots[st.capture] = text

    def _fallback(self, event: EventData) -> None:
        """Unexpected input: the fallback text, then the question again with its options."""
        turn = _turn(event)
        st = self.spec(turn)
        fallback = st.fallback or self.script.fallback
        turn.replies.extend(Reply(self.render(turn.slots, t)) for t in fallback)
        if st.say:
            self.say(turn, st, st.say[-1:])

    def _again(self, event: EventData) -> None:
        """A message after the end: say the last state's texts again (its lead code stays)."""
        turn = _turn(event)
        self.say(turn, self.spec(turn))
        turn.finished = self.spec(turn).terminal
