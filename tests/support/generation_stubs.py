"""The remote services of the generation and ops_trace lanes, run locally for a test session.

One fake OpenAI-compatible provider (configured twice: `fake`, and `fake-strict` with a
one-second deadline), an OTLP/HTTP collector and Langfuse's OTLP endpoint. `settings`
points the app and every worker at them, with short retry delays so tests run quickly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.fake_openai import FakeOpenAI
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.otlp_receiver import otlp_receiver

LANGFUSE_KEYS = ("pk-lf-test", "sk-lf-test")


@dataclass(frozen=True)
class GenerationStubs:
    openai: FakeOpenAI
    otlp: OtlpReceiver
    langfuse: OtlpReceiver

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
            # Below the tests' streams (seconds long), so the job shows progress mid-way.
            "GENERATION_DB_WRITE_INTERVAL": "0.5",
            "TRACE_SINKS": "database,otlp,langfuse",
            "TRACE_OTLP_ENDPOINT": self.otlp.endpoint + "/v1/traces",
            "TRACE_LANGFUSE_HOST": self.langfuse.base_url,
            "TRACE_LANGFUSE_PUBLIC_KEY": LANGFUSE_KEYS[0],
            "TRACE_LANGFUSE_SECRET_KEY": LANGFUSE_KEYS[1],
            "TRACE_SHIP_MAX_ATTEMPTS": "3",
            "TRACE_SHIP_RETRY_DELAY": "0.1",
            "TRACE_SHIP_TIMEOUT": "1",
        }

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[GenerationStubs]:
        with ExitStack() as stack:
            yield cls(
                openai=stack.enter_context(FakeOpenAI.running()),
                otlp=stack.enter_context(otlp_receiver()),
                langfuse=stack.enter_context(otlp_receiver("/api/public/otel", auth=LANGFUSE_KEYS)),
            )
