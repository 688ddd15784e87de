"""The head sampler: traces start at requests, task runs and beat ticks, not at the broker.

A database or Redis call with no request or task around it (kombu polling and
acknowledging messages, a worker's start-up queries) would otherwise begin a one-span trace
of its own: noise in the back end and cost on every message.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.trace.sampling import SamplingResult
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import Link
from opentelemetry.trace import SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes


class NoOrphanClientSpans(Sampler):
    """Root sampler: client calls outside any trace are dropped, the rest sampled at `rate`."""

    def __init__(self, rate: float) -> None:
        self.ratio = TraceIdRatioBased(rate)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return self.ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClientSpans{{{self.ratio.get_description()}}}"


def sampler(rate: float) -> Sampler:
    """Keep the caller's decision (request header, message header); new traces at `rate`."""
    return ParentBased(root=NoOrphanClientSpans(rate))
