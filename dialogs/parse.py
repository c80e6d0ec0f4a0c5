"""YAML text -> Script, checking the schema (keys, types, names) and keeping line numbers.

The text is only *composed* into YAML nodes, never constructed into Python objects: no tags are
honoured, every scalar stays the string the author wrote (so `yes`/`no`/`on` stay strings, not
YAML 1.1 booleans), and every node keeps its line for error messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from dialogs.errors import ScriptProblem
from dialogs.model import RISK_KEYS, SKIP_VALUE, Script, StateSpec
from dialogs.types import Option

MAX_SCRIPT_CHARS = 512_000
MAX_NODES = 50_000  # alias-heavy YAML ("billion laughs") is cut off, not expanded

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
VALUE_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")
LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")

TOP_KEYS = ("id", "lang", "title", "description", "start", "fallback", "slots", "on_risk", "states")
REQUIRED_TOP = ("id", "lang", "title", "start", "states")
STATE_KEYS = (
    "say",
    "options",
    "capture",
    "skippable",
    "on",
    "on_text",
    "on_risk",
    "next",
    "actions",
    "fallback",
)
OPTION_KEYS = ("label", "value")


class _Walker:
    """Walks composed YAML nodes and records schema problems against one source."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[ScriptProblem] = []
        self.nodes = 0

    def problem(self, node: Any, state: str | None, code: str, message: str) -> None:
        """Record one problem at the node's line."""
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(ScriptProblem(self.source, line, state, code, message))

    def count(self, node: yaml.Node) -> bool:
        """Count a visited node; False once the script is too large to keep walking."""
        self.nodes += 1
        if self.nodes == MAX_NODES:
            self.problem(node, None, "too_large", "script has too many YAML nodes (aliases?)")
        return self.nodes < MAX_NODES

    def mapping(
        self, node: yaml.Node, where: str, state: str | None
    ) -> list[tuple[str, yaml.Node, yaml.Node]] | None:
        """(key, key node, value node) of a mapping, reporting duplicates and non-string keys."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, state, "wrong_type", f"{where} must be a mapping")
            return None
        seen: set[str] = set()
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        for knode, vnode in node.value:
            if not self.count(knode):
                return out
            if not isinstance(knode, yaml.ScalarNode) or knode.tag == "tag:yaml.org,2002:null":
                self.problem(knode, state, "wrong_type", f"keys of {where} must be plain text")
                continue
            if knode.value in seen:
                self.problem(
                    knode, state, "duplicate_key", f"duplicate key '{knode.value}' in {where}"
                )
                continue
            seen.add(knode.value)
            out.append((knode.value, knode, vnode))
        return out

    def text(self, node: yaml.Node, where: str, state: str | None) -> str | None:
        """A non-empty scalar as the exact string written."""
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, state, "wrong_type", f"{where} must be text")
            return None
        if not node.value.strip():
            self.problem(node, state, "wrong_type", f"{where} must not be empty")
            return None
        return node.value

    def texts(self, node: yaml.Node, where: str, state: str | None) -> tuple[str, ...] | None:
        """One text or a list of texts."""
        if isinstance(node, yaml.SequenceNode):
            out = []
            for item in node.value:
                if not self.count(item):
                    break
                value = self.text(item, f"each item of {where}", state)
                if value is not None:
                    out.append(value)
            if not node.value:
                self.problem(node, state, "wrong_type", f"{where} must not be an empty list")
            return tuple(out)
        value = self.text(node, where, state)
        return None if value is None else (value,)

    def name(
        self, node: yaml.Node, where: str, state: str | None, pattern: re.Pattern[str] = NAME_RE
    ) -> str | None:
        """A name matching `pattern` (state, slot, script id, option value)."""
        value = self.text(node, where, state)
        if value is None:
            return None
        if not pattern.match(value):
            self.problem(
                node,
                state,
                "bad_name",
                f"{where} '{value}' must match {pattern.pattern} (lower-case ASCII, digits, _)",
            )
            return None
        return value


def _yaml_problem(source: str, exc: yaml.YAMLError) -> ScriptProblem:
    """A YAML syntax error as a problem at its line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    what = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"YAML syntax error: {what}" + (f" ({context})" if context else "")
    return ScriptProblem(source, line, None, "yaml_syntax", message)


def parse_script(text: str, source: str = "<text>") -> tuple[Script | None, list[ScriptProblem]]:
    """Parse and schema-check a script; returns (script or None, problems)."""
    if len(text) > MAX_SCRIPT_CHARS:
        size = f"{len(text)} characters (limit {MAX_SCRIPT_CHARS})"
        return None, [ScriptProblem(source, None, None, "too_large", f"script is {size}")]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return None, [_yaml_problem(source, exc)]
    if root is None:
        return None, [ScriptProblem(source, 1, None, "schema", "the script is empty")]
    w = _Walker(source)
    top = w.mapping(root, "the script", None)
    if top is None:
        return None, w.problems
    fields: dict[str, Any] = {}
    lines: dict[str, int] = {}
    readers: dict[str, Callable[[yaml.Node], Any]] = {
        "id": lambda n: w.name(n, "id", None),
        "lang": lambda n: w.name(n, "lang", None, LANG_RE),
        "title": lambda n: w.text(n, "title", None),
        "description": lambda n: w.text(n, "description", None),
        "start": lambda n: w.name(n, "start", None),
        "fallback": lambda n: w.texts(n, "fallback", None),
        "slots": lambda n: _slot_labels(w, n),
        "on_risk": lambda n: _risk(w, n, None, lines, "on_risk"),
        "states": lambda n: _states(w, n),
    }
    for key, knode, vnode in top:
        lines[key] = knode.start_mark.line + 1
        if key not in readers:
            w.problem(
                knode, None, "unknown_key", f"unknown key '{key}' (allowed: {', '.join(TOP_KEYS)})"
            )
            continue
        fields[key] = readers[key](vnode)
    for key in REQUIRED_TOP:
        if key not in lines:
            w.problem(root, None, "missing_key", f"missing required key '{key}'")
    if any(fields.get(k) is None for k in REQUIRED_TOP):
        return None, w.problems
    script = Script(
        source=source,
        text=text,
        id=fields["id"],
        lang=fields["lang"],
        title=fields["title"],
        start=fields["start"],
        fallback=fields.get("fallback") or (),
        slot_labels=fields.get("slots") or {},
        on_risk=fields.get("on_risk") or {},
        states=fields["states"],
        lines=lines,
    )
    return script, w.problems


def _slot_labels(w: _Walker, node: yaml.Node) -> dict[str, str]:
    """`slots:` mapping of slot name -> label shown in the summary."""
    out: dict[str, str] = {}
    for key, knode, vnode in w.mapping(node, "slots", None) or ():
        if w.name(knode, "slot name", None) is None:
            continue
        label = w.text(vnode, f"label of slot '{key}'", None)
        if label is not None:
            out[key] = label
    return out


def _risk(
    w: _Walker, node: yaml.Node, state: str | None, lines: dict[str, int], prefix: str
) -> dict[str, str]:
    """`on_risk:` mapping of urgent/imminent -> state name."""
    out: dict[str, str] = {}
    if isinstance(node, yaml.ScalarNode) and node.value.strip() in ("", "{}"):
        return out
    for key, knode, vnode in w.mapping(node, "on_risk", state) or ():
        if key not in RISK_KEYS:
            allowed = ", ".join(RISK_KEYS)
            w.problem(knode, state, "unknown_key", f"on_risk key '{key}' (allowed: {allowed})")
            continue
        target = w.name(vnode, f"on_risk.{key}", state)
        if target is not None:
            out[key] = target
            lines[f"{prefix}.{key}"] = vnode.start_mark.line + 1
    return out


def _states(w: _Walker, node: yaml.Node) -> dict[str, StateSpec]:
    """`states:` mapping of name -> state."""
    out: dict[str, StateSpec] = {}
    entries = w.mapping(node, "states", None)
    if entries is not None and not entries:
        w.problem(node, None, "schema", "states must not be empty")
    for name, knode, vnode in entries or ():
        if w.name(knode, "state name", None) is None:
            continue
        spec = _state(w, name, knode.start_mark.line + 1, vnode)
        if spec is not None:
            out[name] = spec
    return out


def _state(w: _Walker, name: str, line: int, node: yaml.Node) -> StateSpec | None:
    """One state's mapping -> StateSpec (None when it is not a mapping at all)."""
    entries = w.mapping(node, f"state '{name}'", name)
    if entries is None:
        return None
    lines: dict[str, int] = {}
    f: dict[str, Any] = {}
    for key, knode, vnode in entries:
        lines[key] = knode.start_mark.line + 1
        if key == "say":
            f["say"] = w.texts(vnode, "say", name) or ()
        elif key == "fallback":
            f["fallback"] = w.texts(vnode, "fallback", name) or ()
        elif key == "options":
            f["options"] = _options(w, vnode, name)
        elif key == "capture":
            f["capture"] = w.name(vnode, "capture", name)
        elif key == "skippable":
            f["skippable"] = w.text(vnode, "skippable (the skip option's label)", name)
        elif key in ("on_text", "next"):
            f[key] = w.name(vnode, key, name)
        elif key == "on":
            f["on"] = _on(w, vnode, name, lines)
        elif key == "on_risk":
            f["on_risk"] = _risk(w, vnode, name, lines, "on_risk")
        elif key == "actions":
            f["actions"] = _actions(w, vnode, name, lines)
        else:
            allowed = ", ".join(STATE_KEYS)
            w.problem(knode, name, "unknown_key", f"unknown key '{key}' (allowed: {allowed})")
    return StateSpec(name=name, line=line, lines=lines, **f)


def _options(w: _Walker, node: yaml.Node, state: str) -> tuple[Option, ...]:
    """`options:` list of {label, value}."""
    if not isinstance(node, yaml.SequenceNode):
        w.problem(node, state, "wrong_type", "options must be a list of {label, value}")
        return ()
    out: list[Option] = []
    for item in node.value:
        if not w.count(item):
            break
        entries = w.mapping(item, "an option", state)
        if entries is None:
            continue
        got: dict[str, str | None] = {}
        for key, knode, vnode in entries:
            if key == "label":
                got["label"] = w.text(vnode, "option label", state)
            elif key == "value":
                got["value"] = w.name(vnode, "option value", state, VALUE_RE)
            else:
                w.problem(knode, state, "unknown_key", f"unknown option key '{key}' (label, value)")
        for key in OPTION_KEYS:
            if key not in got:
                w.problem(item, state, "missing_key", f"an option is missing its '{key}'")
        label, value = got.get("label"), got.get("value")
        if label is not None and value is not None:
            if value == SKIP_VALUE:
                w.problem(item, state, "reserved", "option value 'skip' is reserved: use skippable")
            out.append(Option(label, value))
    return tuple(out)


def _on(w: _Walker, node: yaml.Node, state: str, lines: dict[str, int]) -> dict[str, str]:
    """`on:` mapping of option value -> state name."""
    out: dict[str, str] = {}
    for key, knode, vnode in w.mapping(node, "on", state) or ():
        if w.name(knode, "on key (an option value)", state, VALUE_RE) is None:
            continue
        target = w.name(vnode, f"on.{key}", state)
        if target is not None:
            out[key] = target
            lines[f"on.{key}"] = vnode.start_mark.line + 1
    return out


def _actions(w: _Walker, node: yaml.Node, state: str, lines: dict[str, int]) -> tuple[str, ...]:
    """`actions:` one name or a list of names (checked against the whitelist later)."""
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for item in items:
        value = w.text(item, "an action", state)
        if value is not None:
            out.append(value)
            lines.setdefault(f"action.{value}", item.start_mark.line + 1)
    return tuple(out)
