"""The set of validated scripts, every version kept, each compiled at most once."""

from __future__ import annotations

from pathlib import Path

from dialogs.compiled import CompiledScript
from dialogs.errors import ScriptError, ScriptProblem, UnknownScript
from dialogs.model import Script
from dialogs.validate import check_text

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"
DEFAULT_LANG = "zh-CN"

Key = tuple[str, str, str]  # (script id, lang, version)


class ScriptLibrary:
    """Holds validated scripts by (id, lang, version) and knows the current version of each."""

    def __init__(self) -> None:
        self._scripts: dict[Key, Script] = {}
        self._current: dict[tuple[str, str], str] = {}
        self._compiled: dict[Key, CompiledScript] = {}
        self.compile_count = 0  # how many machines were built (each key once)

    @classmethod
    def load_dir(cls, path: Path | None = None) -> ScriptLibrary:
        """Load every *.yaml in a folder (default dialogs/scripts); ScriptError if any is invalid."""
        folder = Path(path) if path is not None else SCRIPTS_DIR
        lib = cls()
        problems: list[ScriptProblem] = []
        seen: dict[tuple[str, str], str] = {}
        files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
        if not files:
            problems.append(ScriptProblem(str(folder), None, None, "empty", "no *.yaml scripts"))
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(ScriptProblem(str(file), None, None, "unreadable", str(exc)))
                continue
            script, found = check_text(text, str(file))
            problems.extend(found)
            if script is None or found:
                continue
            pair = (script.id, script.lang)
            if pair in seen:
                msg = f"script '{script.id}' ({script.lang}) is also defined in {seen[pair]}"
                problems.append(ScriptProblem(str(file), None, None, "duplicate_script", msg))
                continue
            seen[pair] = str(file)
            lib._add(script)
        if problems:
            raise ScriptError(problems)
        return lib

    def add_text(self, text: str, source: str = "<upload>") -> tuple[str, str, str]:
        """Validate a script's text and make it current; returns (script_id, lang, version)."""
        script, problems = check_text(text, source)
        if problems or script is None:
            raise ScriptError(problems)
        self._add(script)
        return script.id, script.lang, script.version

    def _add(self, script: Script) -> None:
        """Keep the script (older versions stay for pinned conversations) and make it current."""
        key = (script.id, script.lang, script.version)
        self._scripts.setdefault(key, script)
        self._current[(script.id, script.lang)] = script.version

    def script_ids(self) -> list[str]:
        """Ids of the loaded scripts."""
        return sorted({sid for sid, _ in self._current})

    def languages(self, script_id: str) -> list[str]:
        """Languages a script exists in."""
        return sorted(lang for sid, lang in self._current if sid == script_id)

    def pick_lang(self, script_id: str, lang: str) -> str:
        """`lang` if the script has it, else zh-CN, else its first language."""
        langs = self.languages(script_id)
        if not langs:
            raise UnknownScript(script_id)
        if lang in langs:
            return lang
        return DEFAULT_LANG if DEFAULT_LANG in langs else langs[0]

    def current_version(self, script_id: str, lang: str) -> str:
        """The version new conversations start on; KeyError (UnknownScript) if none."""
        try:
            return self._current[(script_id, lang)]
        except KeyError:
            raise UnknownScript(f"{script_id} ({lang})") from None

    def has_version(self, script_id: str, lang: str, version: str) -> bool:
        """True when this exact version is loaded."""
        return (script_id, lang, version) in self._scripts

    def script(self, script_id: str, lang: str, version: str | None = None) -> Script:
        """A loaded script (the current version unless one is given)."""
        version = version or self.current_version(script_id, lang)
        try:
            return self._scripts[(script_id, lang, version)]
        except KeyError:
            raise UnknownScript(f"{script_id} ({lang}) version {version}") from None

    def compiled(self, script_id: str, lang: str, version: str) -> CompiledScript:
        """The machine for one version, built on first use and cached."""
        key = (script_id, lang, version)
        found = self._compiled.get(key)
        if found is None:
            found = CompiledScript(self.script(script_id, lang, version))
            self._compiled[key] = found
            self.compile_count += 1
        return found
