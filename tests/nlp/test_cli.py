"""`qingting assess` and `qingting eval` behaviour."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from nlp.cli import assess_main, eval_main

ROOT = Path(__file__).resolve().parents[2]


def test_assess_reads_json_lines_and_writes_one_line_each() -> None:
    stdin = io.StringIO(
        '{"text": "我想死"}\n'
        '{"texts": ["他又喝醉了", "我躲在厕所"]}\n'
        "not json\n"
        '{"text": "今天天气真好"}\n'
    )
    out = io.StringIO()
    rc = assess_main(stdin, out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert len(lines) == 4
    assert rc == 1  # one bad line
    assert lines[0]["level"] == "urgent"
    assert lines[0]["categories"] == ["suicide_self_harm"]
    assert lines[0]["subject"] == "self"
    assert set(lines[0]["hits"][0]) == {"text", "start", "end", "category", "rule"}
    assert lines[1]["level"] == "imminent"
    assert "error" in lines[2]
    assert lines[3] == {"level": "none", "categories": [], "subject": "none", "hits": []}


def test_eval_prints_figures_and_progress(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    rows = [
        {"text": "我想死", "level": "urgent", "categories": ["suicide_self_harm"]},
        {"text": "笑死我了", "level": "none", "categories": []},
        {"text": "家里都没有方便我上吊的地方", "level": 6, "high_risk": 1},
    ]
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert eval_main(str(f), out, err) == 0
    text = out.getvalue()
    assert "precision" in text and "recall" in text and "F1" in text
    assert "suicide_self_harm" in text
    assert "confusion" in text
    assert "3/3" in err.getvalue()


def test_eval_missing_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert eval_main(str(tmp_path / "nope.jsonl"), out, err) == 2
    assert "cannot read" in err.getvalue()


def test_module_entry_point(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "nlp.cli", "assess"],
        input='{"text": "我爸正在打我"}\n',
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["level"] == "imminent"
    assert (tmp_path / "var").is_dir()  # jieba's cache lives under ./var of the working dir
