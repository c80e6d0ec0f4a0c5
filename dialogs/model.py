"""The parsed form of a dialogue script: plain frozen data with the line of every part."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from dialogs.types import Option

RISK_KEYS: tuple[str, ...] = ("urgent", "imminent")
SKIP_VALUE = "skip"
# Slots the engine fills itself; templates may use them without a capturing state.
BUILTIN_SLOTS: tuple[str, ...] = ("summary", "lead_code")


def script_version(text: str) -> str:
    """Short sha256 of a script's text: the version a conversation is pinned to."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class StateSpec:
    """One state of a script as written, with the line of the state and of each key."""

    name: str
    line: int
    say: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    capture: str | None = None
    skippable: str | None = None  # label of the added "skip" option
    on: Mapping[str, str] = field(default_factory=dict)
    on_text: str | None = None
    on_risk: Mapping[str, str] | None = None  # None: use the script's default
    next: str | None = None
    actions: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()
    lines: Mapping[str, int] = field(default_factory=dict)  # key (or "on.<value>") -> line

    @property
    def all_options(self) -> tuple[Option, ...]:
        """Options shown to the child, including the skip option of a skippable capture."""
        if self.skippable is None:
            return self.options
        return (*self.options, Option(self.skippable, SKIP_VALUE))

    @property
    def waits(self) -> bool:
        """True when the state waits for the child's input (options, capture or on_text)."""
        return bool(self.options or self.capture or self.on_text or self.skippable)

    @property
    def terminal(self) -> bool:
        """True when entering the state ends the conversation."""
        return "end" in self.actions

    def line_of(self, key: str) -> int:
        """Line of one key of this state, or of the state itself when the key is absent."""
        return self.lines.get(key, self.line)


@dataclass(frozen=True, slots=True)
class Script:
    """A whole validated-or-not script: header fields and its states in file order."""

    source: str
    text: str
    id: str
    lang: str
    title: str
    start: str
    fallback: tuple[str, ...]
    slot_labels: Mapping[str, str]
    on_risk: Mapping[str, str]
    states: Mapping[str, StateSpec]
    lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """Short sha256 of the file text."""
        return script_version(self.text)

    def line_of(self, key: str) -> int | None:
        """Line of a top-level key, if present."""
        return self.lines.get(key)

    def risk_targets(self, state: StateSpec) -> Mapping[str, str]:
        """Risk transitions that apply in a state: its own, else the script's default."""
        if not state.waits:
            return {}
        return self.on_risk if state.on_risk is None else state.on_risk

    def targets(self, state: StateSpec) -> list[tuple[str, str, int]]:
        """Every (kind, target, line) a state can move to, in a stable order."""
        out: list[tuple[str, str, int]] = []
        for value, target in state.on.items():
            out.append((f"on.{value}", target, state.line_of(f"on.{value}")))
        if state.on_text:
            out.append(("on_text", state.on_text, state.line_of("on_text")))
        if state.next:
            out.append(("next", state.next, state.line_of("next")))
        for level, target in self.risk_targets(state).items():
            line = state.line_of(f"on_risk.{level}")
            if state.on_risk is None:
                line = self.lines.get(f"on_risk.{level}", line)
            out.append((f"on_risk.{level}", target, line))
        return out
