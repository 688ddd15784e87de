"""Normalise parsed text line by line: one paragraph per block, no control characters."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from collections.abc import Iterator

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\ufeff]")
SPACES = re.compile(r"[ \t\u00a0]+")
WORD = re.compile(r"\w+")


def clean_lines(lines: Iterable[str]) -> Iterator[str]:
    """Cleaned lines; runs of blank lines become one blank line (a paragraph break)."""
    blank = True
    for raw in lines:
        line = SPACES.sub(" ", CONTROL.sub("", unicodedata.normalize("NFKC", raw))).strip()
        if line:
            yield line + "\n"
            blank = False
        elif not blank:
            yield "\n"
            blank = True


def count_words(text: str) -> int:
    return len(WORD.findall(text))
