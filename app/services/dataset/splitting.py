"""Split cleaned text into overlapping segments, on paragraph and sentence boundaries first.

Works on a stream of lines, so a document of any size is split holding only the current
segment in memory. A piece longer than the segment size is broken at sentence ends, then
at spaces, and only as a last resort mid-word.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from collections.abc import Iterator

SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
# Characters of one paragraph held before it is passed on in parts.
PARAGRAPH_LIMIT = 64 * 1024


def paragraphs(lines: Iterable[str], limit: int = PARAGRAPH_LIMIT) -> Iterator[tuple[str, bool]]:
    """(text, starts a paragraph) pairs; blank lines separate paragraphs.

    Line breaks inside a paragraph become spaces. A paragraph longer than `limit` comes
    out in parts, so text without blank lines never piles up in memory.
    """
    current: list[str] = []
    length = 0
    starts = True
    for line in lines:
        stripped = line.strip()
        if stripped:
            current.append(stripped)
            length += len(stripped) + 1
            if length >= limit:
                yield " ".join(current), starts
                current, length, starts = [], 0, False
        elif current:
            yield " ".join(current), starts
            current, length, starts = [], 0, True
        else:
            starts = True
    if current:
        yield " ".join(current), starts


def _fit(text: str, size: int) -> Iterator[str]:
    """Pieces of `text` no longer than `size`, cut at the coarsest boundary that works."""
    if len(text) <= size:
        yield text
        return
    for boundary in (SENTENCE_END, re.compile(r"\s+")):
        parts = [part for part in boundary.split(text) if part]
        if len(parts) > 1:
            for part in parts:
                yield from _fit(part, size)
            return
    for start in range(0, len(text), size):
        yield text[start : start + size]


def _joined(window: deque[tuple[str, str]]) -> str:
    return "".join((sep if i else "") + piece for i, (sep, piece) in enumerate(window))


def split(lines: Iterable[str], size: int, overlap: int) -> Iterator[str]:
    """Segments of at most `size` characters; consecutive ones share up to `overlap`."""
    # (separator before the piece, piece); a segment is a few dozen pieces at most.
    window: deque[tuple[str, str]] = deque()
    for paragraph, starts in paragraphs(lines):
        sep = "\n\n" if starts else " "
        for piece in _fit(paragraph, size):
            if window and len(_joined(window)) + len(sep) + len(piece) > size:
                yield _joined(window)
                # Keep the tail as overlap, but never so much that the new piece won't fit.
                while window and (
                    len(_joined(window)) > overlap
                    or len(_joined(window)) + len(sep) + len(piece) > size
                ):
                    window.popleft()
            window.append((sep, piece))
            sep = " "
    if window:
        yield _joined(window)
