"""Outgoing WeChat text: one turn's replies combined, then split at WeChat's size limit."""

from __future__ import annotations

from collections.abc import Sequence

from bot.channels.base import Outbound, as_numbered_text

MAX_TEXT_BYTES = 2048  # custom/send text content; longer → 45002 "content size out of limit"
BREAKS = ("\n\n", "\n", "。", "！", "？", ". ", "! ", "? ", "，", ", ", " ")


def combine(messages: Sequence[Outbound]) -> str:
    """The replies of one turn as ONE message (the window allows only 5 sends per user message)."""
    return "\n\n".join(t for t in (as_numbered_text(m).strip() for m in messages) if t)


def _prefix_within(text: str, limit: int) -> int:
    """Length in characters of the longest prefix of text whose UTF-8 fits in limit bytes."""
    size = 0
    for i, ch in enumerate(text):
        size += len(ch.encode("utf-8", "surrogatepass"))
        if size > limit:
            return i
    return len(text)


def split_text(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Pieces of text, each at most limit UTF-8 bytes, cut at the nicest break available."""
    chunks: list[str] = []
    rest = text.strip()
    while rest:
        n = _prefix_within(rest, limit)
        if n >= len(rest):
            chunks.append(rest)
            break
        cut = n
        head = rest[:n]
        for mark in BREAKS:
            at = head.rfind(mark)
            if at >= n // 2:  # never leave a tiny first piece for the sake of a nice break
                cut = at + len(mark)
                break
        cut = max(cut, 1)
        piece = rest[:cut].strip()
        if piece:
            chunks.append(piece)
        rest = rest[cut:].strip()
    return chunks
