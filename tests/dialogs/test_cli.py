"""`python -m dialogs validate` and validate_main report problems and set the exit code."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from dialogs.cli import validate_main
from dialogs.library import SCRIPTS_DIR
from tests.dialogs.helpers import MINI

ROOT = Path(__file__).resolve().parents[2]


def test_validate_main_ok_for_shipped_scripts() -> None:
    out = io.StringIO()
    paths = [str(p) for p in sorted(SCRIPTS_DIR.glob("*.yaml"))]
    assert validate_main(paths, out) == 0
    assert out.getvalue().count(": ok (intake ") == 3


def test_validate_main_prints_problems_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINI.replace('"no": human', '"no": humn'), encoding="utf-8")
    out = io.StringIO()
    assert validate_main([str(bad), str(tmp_path / "missing.yaml")], out) == 1
    text = out.getvalue()
    assert f"{bad}:" in text and "humn" in text and "state 'ask'" in text
    assert "missing.yaml: cannot read" in text


def test_python_m_dialogs_validate_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [", encoding="utf-8")
    good = SCRIPTS_DIR / "intake.zh-CN.yaml"
    cmd = [sys.executable, "-m", "dialogs", "validate"]
    ok = subprocess.run([*cmd, str(good)], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    fail = subprocess.run([*cmd, str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert fail.returncode == 1 and "YAML syntax error" in fail.stdout
