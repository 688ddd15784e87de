"""The built-in `offline` provider: an extractive summary of the prompt, no model involved.

It picks the prompt's most representative sentences (by the frequency of their content
words) and returns them verbatim, in their original order. It is deterministic and needs
no network, so the embedded stack can run generation jobs end to end; its model name
says what it is, and it never invents text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Generator

from app.services.generation.providers.base import ChatRequest
from app.services.generation.providers.base import Delta
from app.services.generation.providers.base import ProviderRejected

MODEL = "extractive-summary"
DEFAULT_SENTENCES = 3

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n{2,}")
_WORD = re.compile(r"[a-z0-9']+")
_TOKEN = re.compile(r"\S+\s*")
STOPWORDS = frozenset(
    "a an and are as at be been but by for from has have he her his i in is it its of on or "
    "our she that the their them they this to was we were what when which who will with you "
    "your not no do does did so if than then there these those can could would should".split()
)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def summarise(text: str, max_sentences: int = DEFAULT_SENTENCES) -> str:
    """The `max_sentences` highest-scoring sentences of `text`, in document order."""
    sentences = _sentences(text)
    if len(sentences) <= max_sentences:
        return " ".join(sentences)
    frequency = Counter(w for w in _WORD.findall(text.lower()) if w not in STOPWORDS)

    def score(sentence: str) -> float:
        words = [w for w in _WORD.findall(sentence.lower()) if w not in STOPWORDS]
        return sum(frequency[w] for w in words) / (len(words) or 1) if words else 0.0

    ranked = sorted(range(len(sentences)), key=lambda i: (-score(sentences[i]), i))
    return " ".join(sentences[i] for i in sorted(ranked[:max_sentences]))


def _user_text(request: ChatRequest) -> str:
    parts = []
    for message in request.messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return "\n\n".join(p for p in parts if p)


class OfflineProvider:
    """Streams the summary word by word, as a remote provider streams tokens."""

    name = "offline"
    models = (MODEL,)

    def stream(self, request: ChatRequest) -> Generator[Delta, None, None]:
        text = _user_text(request)
        if not text.strip():
            raise ProviderRejected(400, "offline: the prompt has no user text to summarise")
        max_sentences = int(request.parameters.get("max_sentences", DEFAULT_SENTENCES))
        summary = summarise(text, max(1, max_sentences))
        pieces = _TOKEN.findall(summary)
        for piece in pieces:
            yield Delta(text=piece)
        yield Delta(
            finish_reason="stop",
            prompt_tokens=len(_TOKEN.findall(text)),
            completion_tokens=len(pieces),
        )
