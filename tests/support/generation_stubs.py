"""The remote services of the generation and ops_trace lanes, run locally for a test session.

One fake OpenAI-compatible provider (configured twice: `fake`, and `fake-strict` with a
one-second deadline), an OTLP/HTTP collector and a Langfuse ingestion API. `settings`
points the app and every worker at them, with short retry delays so tests run quickly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.fake_openai import FakeOpenAI
from tests.support.trace_receivers import Receiver

LANGFUSE_KEYS = ("pk-lf-test", "sk-lf-test")


@dataclass(frozen=True)
class GenerationStubs:
    openai: FakeOpenAI
    otlp: Receiver
    langfuse: Receiver

    @property
    def settings(self) -> dict[str, str]:
        provider = {"base_url": self.openai.base_url, "api_key": self.openai.api_key}
        return {
            "GENERATION_PROVIDERS": json.dumps(
                {"fake": {**provider, "timeout": 20}, "fake-strict": {**provider, "timeout": 1}}
            ),
            "GENERATION_MAX_RETRIES": "2",
            "GENERATION_RETRY_BASE_DELAY": "0.05",
            "GENERATION_RETRY_MAX_DELAY": "0.5",
            "GENERATION_PROGRESS_INTERVAL": "0.1",
            "TRACE_SINKS": "database,otlp,langfuse",
            "TRACE_OTLP_ENDPOINT": self.otlp.endpoint,
            "TRACE_LANGFUSE_HOST": self.langfuse.base_url,
            "TRACE_LANGFUSE_PUBLIC_KEY": LANGFUSE_KEYS[0],
            "TRACE_LANGFUSE_SECRET_KEY": LANGFUSE_KEYS[1],
            "TRACE_FLUSH_INTERVAL": "0.2",
            "TRACE_BUFFER_LIMIT": "20",
            "TRACE_SHIP_MAX_ATTEMPTS": "3",
            "TRACE_SHIP_RETRY_DELAY": "0.1",
            "TRACE_SHIP_TIMEOUT": "2",
        }

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[GenerationStubs]:
        with ExitStack() as stack:
            yield cls(
                openai=stack.enter_context(FakeOpenAI.running()),
                otlp=stack.enter_context(Receiver.running("/v1/traces")),
                langfuse=stack.enter_context(
                    Receiver.running("/api/public/ingestion", auth=LANGFUSE_KEYS)
                ),
            )
