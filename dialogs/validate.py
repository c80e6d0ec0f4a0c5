"""Semantic checks of a parsed script: targets, reachability, ways out, fallbacks, a person."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from dialogs.errors import ScriptProblem
from dialogs.model import BUILTIN_SLOTS, Script, StateSpec
from dialogs.parse import parse_script
from dialogs.types import ACTIONS

TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([a-z][a-z0-9_]*)\}|[{}]")


def template_slots(text: str) -> tuple[list[str], bool]:
    """Slot names used by a `{slot}` template, and whether its braces are well formed."""
    names: list[str] = []
    ok = True
    for m in TEMPLATE_TOKEN.finditer(text):
        if m.group(1):
            names.append(m.group(1))
        elif m.group(0) in ("{", "}"):
            ok = False
    return names, ok


def read_source(text_or_path: str | Path) -> tuple[str, str]:
    """(text, source name) from a Path, an existing file's path, or the script text itself."""
    if isinstance(text_or_path, Path):
        return text_or_path.read_text(encoding="utf-8"), str(text_or_path)
    if "\n" not in text_or_path and len(text_or_path) < 4096 and Path(text_or_path).is_file():
        return Path(text_or_path).read_text(encoding="utf-8"), text_or_path
    return text_or_path, "<text>"


def validate(text_or_path: str | Path, source: str | None = None) -> list[ScriptProblem]:
    """Every problem in a script given as text or a path; an empty list means it is valid."""
    try:
        text, name = read_source(text_or_path)
    except (OSError, UnicodeDecodeError) as exc:
        return [ScriptProblem(str(text_or_path), None, None, "unreadable", str(exc))]
    return check_text(text, source or name)[1]


def check_text(text: str, source: str) -> tuple[Script | None, list[ScriptProblem]]:
    """Parse and fully check a script's text: (script, problems)."""
    script, problems = parse_script(text, source)
    if script is not None:
        problems.extend(_Checker(script).run())
    problems.sort(key=lambda p: (p.line or 0, p.code))
    return script, problems


class _Checker:
    """Runs the semantic checks over one parsed script."""

    def __init__(self, script: Script) -> None:
        self.s = script
        self.problems: list[ScriptProblem] = []

    def add(self, line: int | None, state: str | None, code: str, message: str) -> None:
        """Record one problem."""
        self.problems.append(ScriptProblem(self.s.source, line, state, code, message))

    def run(self) -> list[ScriptProblem]:
        """All checks, in an order that keeps later ones meaningful."""
        s = self.s
        if s.start not in s.states:
            self.add(
                s.line_of("start"),
                None,
                "unknown_target",
                f"start state '{s.start}' is not defined",
            )
        for st in s.states.values():
            self.check_state(st)
        self.check_templates()
        if s.start in s.states:
            self.check_next_cycles()
            reachable = self.reachable()
            for st in s.states.values():
                if st.name not in reachable:
                    self.add(
                        st.line, st.name, "unreachable", "no path from the start reaches this state"
                    )
            self.check_human(reachable)
        return self.problems

    def check_state(self, st: StateSpec) -> None:
        """Checks local to one state."""
        s = self.s
        for kind, target, line in s.targets(st):
            if target not in s.states:
                self.add(
                    line, st.name, "unknown_target", f"{kind} goes to unknown state '{target}'"
                )
        values = [o.value for o in st.all_options]
        for dup in sorted({v for v in values if values.count(v) > 1}):
            self.add(
                st.line_of("options"), st.name, "duplicate_option", f"option value '{dup}' twice"
            )
        labels = [o.label for o in st.all_options]
        for dup in sorted({v for v in labels if labels.count(v) > 1}):
            self.add(
                st.line_of("options"), st.name, "duplicate_option", f"option label '{dup}' twice"
            )
        for value in st.on:
            if value not in values:
                self.add(
                    st.line_of(f"on.{value}"),
                    st.name,
                    "unknown_option",
                    f"on.{value}: this state has no option with value '{value}'",
                )
        for opt in st.all_options:
            if opt.value not in st.on and not st.on_text:
                self.add(
                    st.line_of("options"),
                    st.name,
                    "option_leads_nowhere",
                    f"option '{opt.value}' has no transition (add on.{opt.value} or on_text)",
                )
        if st.next and st.waits:
            self.add(
                st.line_of("next"),
                st.name,
                "conflict",
                "next moves on without waiting; a state that asks (options, capture, on_text) "
                "moves on with on / on_text instead",
            )
        if st.skippable is not None and not st.capture:
            self.add(st.line_of("skippable"), st.name, "conflict", "skippable needs capture")
        if st.on_risk and not st.waits:
            self.add(
                st.line_of("on_risk"),
                st.name,
                "conflict",
                "on_risk only applies to a state that waits for input",
            )
        self.check_actions(st)
        if st.waits and not st.say:
            self.add(st.line, st.name, "silent", "asks for input but says nothing (add say)")
        if not st.terminal and not (st.next or st.on or st.on_text):
            self.add(
                st.line, st.name, "no_way_out", "not an end state, and has no on / on_text / next"
            )
        if st.waits and not st.on_text and not (st.fallback or s.fallback):
            self.add(
                st.line,
                st.name,
                "no_fallback",
                "unexpected free text has nowhere to go: add on_text, a state fallback, "
                "or the script's fallback",
            )

    def check_actions(self, st: StateSpec) -> None:
        """Action names come from the whitelist; an end state does not move on."""
        seen: set[str] = set()
        for action in st.actions:
            line = st.line_of(f"action.{action}")
            if action not in ACTIONS:
                self.add(
                    line,
                    st.name,
                    "unknown_action",
                    f"unknown action '{action}' (allowed: {', '.join(ACTIONS)})",
                )
            if action in seen:
                self.add(line, st.name, "duplicate_action", f"action '{action}' twice")
            seen.add(action)
        if st.terminal and (st.next or st.waits):
            self.add(st.line, st.name, "conflict", "an end state cannot move on or ask for input")

    def check_templates(self) -> None:
        """Every `{slot}` in a text is captured somewhere (or is summary / lead_code)."""
        s = self.s
        captured = {st.capture for st in s.states.values() if st.capture}
        leads = any("create_lead" in st.actions for st in s.states.values())
        known = captured | set(BUILTIN_SLOTS)
        for slot in s.slot_labels:
            if slot not in captured and slot != "lead_code":
                self.add(
                    s.line_of("slots"), None, "unknown_slot", f"slots: '{slot}' is never captured"
                )
        for state, line, text in self.texts():
            names, ok = template_slots(text)
            if not ok:
                self.add(
                    line, state, "bad_template", f"stray brace in {text!r} (write {{{{ or }}}})"
                )
            for name in names:
                if name not in known:
                    self.add(
                        line, state, "unknown_slot", f"template uses unknown slot '{{{name}}}'"
                    )
                elif name == "lead_code" and not leads:
                    self.add(
                        line, state, "unknown_slot", "{lead_code} but no state has create_lead"
                    )
                elif name == "summary" and not s.slot_labels:
                    self.add(
                        line, state, "unknown_slot", "{summary} needs a top-level slots: labels"
                    )

    def texts(self) -> Iterator[tuple[str | None, int | None, str]]:
        """(state, line, text) of every text that is rendered as a template."""
        for text in self.s.fallback:
            yield None, self.s.line_of("fallback"), text
        for st in self.s.states.values():
            for text in st.say:
                yield st.name, st.line_of("say"), text
            for text in st.fallback:
                yield st.name, st.line_of("fallback"), text

    def check_next_cycles(self) -> None:
        """A loop made only of automatic `next` transitions would never stop."""
        states = self.s.states
        reported: set[str] = set()
        for name in states:
            seen: list[str] = []
            cur: str | None = name
            while cur is not None and cur in states and cur not in seen:
                seen.append(cur)
                st = states[cur]
                cur = st.next if not st.waits else None
            if cur is not None and cur in seen and cur not in reported:
                loop = seen[seen.index(cur) :]
                reported.update(loop)
                self.add(
                    states[cur].line_of("next"),
                    cur,
                    "next_cycle",
                    "automatic next transitions loop forever: " + " → ".join([*loop, cur]),
                )

    def edges(self, st: StateSpec) -> list[str]:
        """Known targets of a state."""
        return [t for _, t, _ in self.s.targets(st) if t in self.s.states]

    def reachable(self) -> set[str]:
        """Names of states reachable from the start."""
        seen = {self.s.start}
        todo = deque([self.s.start])
        while todo:
            for t in self.edges(self.s.states[todo.popleft()]):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return seen

    def leads_to_human(self, name: str) -> bool:
        """True when entering this state reaches request_human without the child choosing."""
        seen: set[str] = set()
        cur: str | None = name
        while cur is not None and cur in self.s.states and cur not in seen:
            seen.add(cur)
            st = self.s.states[cur]
            if "request_human" in st.actions:
                return True
            cur = st.next if not st.waits else None
        return False

    def offers_human(self, st: StateSpec) -> bool:
        """The child reaches a person here, or by one choice (an option or free text) here."""
        if "request_human" in st.actions:
            return True
        if not st.waits:
            return False
        choices = list(st.on.values()) + ([st.on_text] if st.on_text else [])
        return any(self.leads_to_human(t) for t in choices)

    def check_human(self, reachable: set[str]) -> None:
        """Some reachable state asks for a person, and no path ends without one being offered."""
        s = self.s
        humans = [n for n in reachable if "request_human" in s.states[n].actions]
        if not humans:
            self.add(
                s.line_of("start"),
                None,
                "no_human",
                "no reachable state has the request_human action: a child can never reach a person",
            )
            return
        # Walk from the start without passing any state that offers a person.
        parent: dict[str, str | None] = {s.start: None}
        todo = deque([s.start])
        while todo:
            name = todo.popleft()
            if self.offers_human(s.states[name]):
                continue
            for t in self.edges(s.states[name]):
                if t not in parent:
                    parent[t] = name
                    todo.append(t)
        bad = [n for n in parent if s.states[n].terminal and not self.offers_human(s.states[n])]
        for name in bad:
            path: list[str] = []
            cur: str | None = name
            while cur is not None:
                path.append(cur)
                cur = parent[cur]
            self.add(
                s.states[name].line,
                name,
                "no_human_path",
                "this path never offers a person: " + " → ".join(reversed(path)),
            )
