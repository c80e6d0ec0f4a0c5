"""Problems found in a dialogue script, and the error that carries them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScriptProblem:
    """One thing wrong with a script: where (file, line, state) and what (code, message)."""

    source: str
    line: int | None
    state: str | None
    code: str  # a stable kind, e.g. "unknown_target", for tests and tooling
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        in_state = f" state '{self.state}':" if self.state else ""
        return f"{where}:{in_state} {self.message} [{self.code}]"


class ScriptError(ValueError):
    """Raised when a script (or a folder of scripts) fails validation; lists every problem."""

    def __init__(self, problems: Sequence[ScriptProblem]) -> None:
        self.problems: tuple[ScriptProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid script")


class UnknownScript(KeyError):
    """Raised when no script with the asked id is loaded."""
