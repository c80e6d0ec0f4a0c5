"""assess is pure and thread-safe: concurrent calls agree with serial ones."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from nlp import assess

DEV = Path(__file__).resolve().parents[1] / "data" / "dev.jsonl"


def test_concurrent_calls_match_serial_results() -> None:
    texts = [json.loads(x)["text"] for x in DEV.read_text(encoding="utf-8").splitlines()]
    texts += [t + "！" for t in texts]  # unseen variants, so threads race on the caches
    serial = [assess(t) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(assess, texts))
    assert parallel == serial


def test_same_input_same_output() -> None:
    a = assess("我爸喝醉了在打我妈 我躲在衣柜里", ["他又喝醉了"])
    b = assess("我爸喝醉了在打我妈 我躲在衣柜里", ["他又喝醉了"])
    assert a == b
