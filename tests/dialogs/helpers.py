"""Small scripts and helpers shared by the dialogs tests."""

from __future__ import annotations

import textwrap

# A minimal valid script: ask, capture, offer a person, end.
MINI = textwrap.dedent(
    """\
    id: mini
    lang: zh-CN
    title: Mini
    start: ask
    fallback: 没看懂。
    slots:
      story: 发生了什么
    states:
      ask:
        say: 你安全吗？
        options:
          - {label: 安全, value: "yes"}
          - {label: 不安全, value: "no"}
        on:
          "yes": story
          "no": human
      human:
        say: 我去找人。
        actions: [request_human]
        next: story
      story:
        say: 说说发生了什么。
        capture: story
        on_text: bye
      bye:
        say: "再见。{summary}"
        actions: [end]
    """
)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line number of the nth line containing needle."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]
