"""Values that cross the dialogs seam: what the engine is given and what one step returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ACTIONS: tuple[str, ...] = ("request_human", "emergency", "create_lead", "end")


@dataclass(frozen=True, slots=True)
class Option:
    """A quick reply: the label the child sees and the value sent back when it is chosen."""

    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One bot message, with optional quick-reply options."""

    text: str
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True)
class Action:
    """An effect the turn handler must carry out after the transition (no I/O in the engine)."""

    name: str  # one of ACTIONS
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DialogState:
    """Where one conversation stands in its script: loaded from and saved to the database."""

    script_id: str
    lang: str
    version: str
    state: str
    slots: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one turn: replies to send, actions to run, and the new state."""

    replies: tuple[Reply, ...]
    actions: tuple[Action, ...]
    state: DialogState
    finished: bool = False
