"""Rendering of `{slot}` templates and of the `{summary}` of collected slots."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dialogs.model import Script

_TOKEN = re.compile(r"\{\{|\}\}|\{([a-z][a-z0-9_]*)\}")


def option_labels(script: Script) -> dict[str, dict[str, str]]:
    """slot -> {option value -> label}, so a stored value reads back as what the child tapped."""
    out: dict[str, dict[str, str]] = {}
    for st in script.states.values():
        if st.capture:
            out.setdefault(st.capture, {}).update({o.value: o.label for o in st.options})
    return out


def display(
    script: Script, labels: Mapping[str, Mapping[str, str]], slots: Mapping[str, Any], name: str
) -> str:
    """How one slot reads in a text: the option's label, the free text, or '' when unset."""
    if name == "summary":
        return summary(script, labels, slots)
    value = slots.get(name)
    if value is None:
        return ""
    text = str(value)
    return labels.get(name, {}).get(text, text)


def summary(
    script: Script, labels: Mapping[str, Mapping[str, str]], slots: Mapping[str, Any]
) -> str:
    """One line per labelled slot that has a value, in the order of the script's `slots:`."""
    sep = "：" if script.lang.startswith("zh") else ": "
    lines = []
    for name, label in script.slot_labels.items():
        value = display(script, labels, slots, name)
        if value:
            lines.append(f"{label}{sep}{value}")
    return "\n".join(lines)


def render(
    script: Script, labels: Mapping[str, Mapping[str, str]], slots: Mapping[str, Any], text: str
) -> str:
    """Fill `{slot}` placeholders; `{{` and `}}` are literal braces. No format-string access."""

    def fill(m: re.Match[str]) -> str:
        if m.group(1):
            return display(script, labels, slots, m.group(1))
        return m.group(0)[0]

    return _TOKEN.sub(fill, text)
