"""Dialogue scripts (YAML), their validator, and the engine that steps a conversation."""

from dialogs.engine import DialogEngine, match_option
from dialogs.errors import ScriptError, ScriptProblem, UnknownScript
from dialogs.leadcode import is_lead_code, new_lead_code
from dialogs.library import ScriptLibrary
from dialogs.types import ACTIONS, Action, DialogState, Option, Reply, Step
from dialogs.validate import validate

__all__ = [
    "ACTIONS",
    "Action",
    "DialogEngine",
    "DialogState",
    "Option",
    "Reply",
    "ScriptError",
    "ScriptLibrary",
    "ScriptProblem",
    "Step",
    "UnknownScript",
    "is_lead_code",
    "match_option",
    "new_lead_code",
    "validate",
]
