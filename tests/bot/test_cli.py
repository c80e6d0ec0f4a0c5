"""The `qingting` command: chat in a terminal, db upgrade and purge, dialogs validate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(
    args: list[str], tmp_path: Path, stdin: str = "", extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "QINGTING_VAR_DIR": str(tmp_path / "var"),
        "QINGTING_LOG_LEVEL": "WARNING",
        **(extra or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_chat_in_the_terminal_with_numbered_options(tmp_path: Path) -> None:
    out = run(["chat"], tmp_path, stdin="1\n1\n")
    assert out.returncode == 0, out.stderr
    assert "1. 我现在安全" in out.stdout  # options shown as a numbered list
    assert "这件事是关于谁的" in out.stdout  # typing "1" picked "I am safe"
    assert "2. 别的小朋友" in out.stdout
    assert (tmp_path / "var" / "secret.key").exists()  # a key was generated on first run
    assert "QINGTING_SECRET_KEY is not set" in out.stderr


def test_chat_in_the_terminal_speaks_the_scripts_the_service_would(tmp_path: Path) -> None:
    shipped = (ROOT / "dialogs" / "scripts" / "intake.zh-CN.yaml").read_text(encoding="utf-8")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "intake.zh-CN.yaml").write_text(
        shipped.replace("你好，我是倾听。", "你好呀，这里是倾听。"), encoding="utf-8"
    )
    out = run(["chat"], tmp_path, stdin="1\n", extra={"QINGTING_SCRIPTS_DIR": str(scripts)})
    assert out.returncode == 0, out.stderr
    assert "你好呀，这里是倾听。" in out.stdout


def test_db_upgrade_creates_the_sqlite_file(tmp_path: Path) -> None:
    out = run(["db", "upgrade"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "var" / "qingting.db").exists()
    again = run(["db", "upgrade"], tmp_path)
    assert again.returncode == 0


def test_db_purge_reports_what_it_did_and_can_be_switched_off(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    out = run(["db", "purge", "--days", "30"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "purged 0 conversation(s) closed more than 30 days ago" in out.stdout
    off = run(["db", "purge"], tmp_path, extra={"QINGTING_RETENTION_DAYS": "0"})
    assert off.returncode == 0, off.stderr
    assert "retention is off" in off.stdout


def test_dialogs_validate(tmp_path: Path) -> None:
    good = ROOT / "dialogs" / "scripts" / "intake.zh-CN.yaml"
    assert run(["dialogs", "validate", str(good)], tmp_path).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text(encoding="utf-8").replace("next: safe", "next: nowhere", 1))
    out = run(["dialogs", "validate", str(bad)], tmp_path)
    assert out.returncode == 1
    assert "nowhere" in out.stdout and "bad.yaml" in out.stdout


def test_assess_reads_json_lines_and_explains_each_verdict(tmp_path: Path) -> None:
    import json

    lines = '{"text": "我想死"}\n{"texts": ["他又喝醉了", "我躲在厕所"]}\n{"text": "笑死我了"}\n'
    out = run(["assess"], tmp_path, stdin=lines)
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == 3 and results[0]["level"] in ("urgent", "imminent")
    assert results[0]["hits"][0]["text"] == "想死" and results[0]["hits"][0]["rule"]
    assert results[1]["level"] in ("urgent", "imminent")  # risk built across the turns
    assert results[2]["level"] == "none"  # hyperbole, not risk


def test_eval_prints_precision_recall_and_a_confusion_table(tmp_path: Path) -> None:
    data = tmp_path / "tiny.jsonl"
    data.write_text(
        '{"text": "我想死", "level": 6, "high_risk": 1}\n'
        '{"text": "今天天气真好", "level": 0, "high_risk": 0}\n',
        encoding="utf-8",
    )
    out = run(["eval", str(data)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "recall" in out.stdout.lower() and "precision" in out.stdout.lower()
