"""BM25 ranking and the keyword analyser."""

from __future__ import annotations

from app.services.dataset.keywords import term_counts
from app.services.dataset.keywords import terms
from app.services.dataset.retrieval import Corpus
from app.services.dataset.retrieval import bm25


def rank(query: str, documents: dict[int, dict[str, int]]) -> dict[int, float]:
    """BM25 over an in-memory corpus; a segment's length is its number of terms."""
    lengths = {key: sum(counts.values()) for key, counts in documents.items()}
    corpus = Corpus(
        size=len(documents),
        average_length=sum(lengths.values()) / len(documents),
        frequency={
            term: sum(1 for counts in documents.values() if term in counts)
            for term in set(terms(query))
        },
    )
    candidates = {key: (counts, lengths[key]) for key, counts in documents.items()}
    return bm25(terms(query), candidates, corpus)


def test_terms_drop_stop_words_and_stem() -> None:
    assert terms("The whales were hunting the whale") == ["whale", "hunt", "whale"]


def test_bm25_ranks_the_document_about_the_query_first() -> None:
    docs = {
        1: term_counts("The whale swam in the sea; the whale was white."),
        2: term_counts("A rabbit ran into a hole in the garden."),
        3: term_counts("Ships sail the sea every day."),
    }
    scores = rank("white whale", docs)
    assert max(scores, key=scores.__getitem__) == 1
    assert 2 not in scores


def test_rare_terms_weigh_more_than_common_ones() -> None:
    docs = {n: term_counts("sea " * 3) for n in range(1, 10)}
    docs[10] = term_counts("sea kraken")
    docs[11] = term_counts("sea sea")
    scores = rank("sea kraken", docs)
    assert max(scores, key=scores.__getitem__) == 10


def test_no_query_terms_no_scores() -> None:
    assert rank("the and of", {1: term_counts("the whale")}) == {}
