"""Splitting: size limits, paragraph and sentence boundaries first, overlap, streaming."""

from __future__ import annotations

from app.services.dataset.cleaning import clean_lines
from app.services.dataset.splitting import PARAGRAPH_LIMIT
from app.services.dataset.splitting import split


def lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def test_short_paragraphs_share_a_segment_and_keep_their_break() -> None:
    segments = list(split(lines("First one.\n\nSecond one.\n"), size=100, overlap=0))
    assert segments == ["First one.\n\nSecond one."]


def test_segments_never_exceed_the_size_and_cut_at_sentence_ends() -> None:
    text = " ".join(f"Sentence number {n} is here." for n in range(40))
    segments = list(split(lines(text), size=120, overlap=0))
    assert len(segments) > 1
    assert all(len(segment) <= 120 for segment in segments)
    assert all(segment.endswith(".") for segment in segments)
    # Nothing lost: every sentence appears, in order.
    assert " ".join(segments) == text


def test_a_paragraph_boundary_is_preferred_over_filling_the_segment() -> None:
    first = "A" * 50 + "."
    second = "B" * 50 + "."
    segments = list(split(lines(f"{first}\n\n{second}\n"), size=80, overlap=0))
    assert segments == [first, second]


def test_neighbouring_segments_overlap_by_whole_sentences() -> None:
    text = " ".join(f"S{n} short." for n in range(30))
    segments = list(split(lines(text), size=60, overlap=25))
    for before, after in zip(segments, segments[1:], strict=False):
        last_sentence = " ".join(before.split(" ")[-2:])
        shared = after[: after.index(last_sentence) + len(last_sentence)]
        assert before.endswith(shared), (before, after)
        assert len(shared) <= 25


def test_a_word_longer_than_the_size_is_cut_hard() -> None:
    segments = list(split(lines("x" * 250), size=100, overlap=0))
    assert segments == ["x" * 100, "x" * 100, "x" * 50]


def test_split_consumes_a_stream_lazily() -> None:
    consumed = 0

    def endless() -> object:
        nonlocal consumed
        while True:
            consumed += 1
            yield "A line of text that goes on.\n"

    # A text with no blank line at all is still passed on in bounded parts.
    first = next(split(endless(), size=200, overlap=0))  # type: ignore[arg-type]
    assert len(first) <= 200
    assert consumed * len("A line of text that goes on.\n") < PARAGRAPH_LIMIT + 100


def test_cleaning_collapses_blank_runs_and_strips_control_characters() -> None:
    raw = ["  Hello\x00   world \n", "\n", "\n", "\n", "Next\tparagraph\u200b\n"]
    assert list(clean_lines(raw)) == ["Hello world\n", "\n", "Next paragraph\n"]
