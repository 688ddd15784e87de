"""Terms for the keyword index: lower-cased words, English stop words dropped, stemmed.

Stemming happens here, once, for both the indexed text and the query; the database's
full-text index only splits the stemmed terms on spaces, so SQLite and PostgreSQL match
exactly the same terms.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import snowballstemmer  # type: ignore[import-untyped]

# Letters and digits; "_" separates words, as both databases' tokenisers treat it.
WORD = re.compile(r"[^\W_]+")
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with you your yours yourself
    yourselves""".split()
)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    return snowballstemmer.stemmer("english")


# Stemming is the slow part of indexing and words repeat: stem each distinct word once.
@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_stemmer().stemWord(word))


def terms(text: str) -> list[str]:
    return [
        _stem(word)
        for word in WORD.findall(text.lower())
        if len(word) > 1 and word not in STOP_WORDS
    ]


def search_text(text: str) -> str:
    """What a segment stores for the full-text index: its terms, space-separated."""
    return " ".join(terms(text))
