"""A local OTLP/HTTP collector on 127.0.0.1: decodes the protobuf the exporters send.

Point `OTEL_EXPORTER_OTLP_ENDPOINT` at `receiver.endpoint`; spans arrive at /v1/traces and
metrics at /v1/metrics, as they would at an OpenTelemetry Collector. With a `prefix` and
`auth` it is Langfuse's OTLP endpoint (`/api/public/otel`, Basic auth with the project's
keys); `down` makes it answer 503, as a back end that is away would.
"""

from __future__ import annotations

import base64
import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.http_server import QuietHandler
from tests.support.http_server import serving


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status: int = 0  # OTLP's StatusCode: 0 unset, 1 ok, 2 error
    status_message: str = ""
    start_ns: int = 0
    end_ns: int = 0


@dataclass(frozen=True)
class Point:
    service: str
    name: str
    attributes: dict[str, Any]
    value: float


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(attributes: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in attributes}


class OtlpReceiver:
    def __init__(self, prefix: str = "", auth: tuple[str, str] | None = None) -> None:
        self.spans: list[Span] = []
        self.points: list[Point] = []
        self.down = False
        self.refused = 0
        self._lock = threading.Lock()
        receiver = self
        basic = "Basic " + base64.b64encode(":".join(auth).encode()).decode() if auth else None

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if basic and self.headers.get("Authorization") != basic:
                    self.send_error(401)
                    return
                if receiver.down:
                    receiver.refused += 1
                    self.send_error(503)
                    return
                path = self.path.removeprefix(prefix)
                if path == "/v1/traces":
                    receiver._traces(body)
                    reply = ExportTraceServiceResponse().SerializeToString()
                elif path == "/v1/metrics":
                    receiver._metrics(body)
                    reply = ExportMetricsServiceResponse().SerializeToString()
                else:
                    self.send_error(404)
                    return
                self.reply(200, reply, "application/x-protobuf")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.endpoint = self.base_url + prefix

    def _traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Span(
                            service=str(resource.get("service.name")),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes=_attributes(span.attributes),
                            resource=resource,
                            status=span.status.code,
                            status_message=span.status.message,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                        )
                    )
        with self._lock:
            self.spans.extend(spans)

    def _metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        points = []
        for resource_metrics in request.resource_metrics:
            service = str(_attributes(resource_metrics.resource.attributes).get("service.name"))
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        if kind == "histogram":
                            value = float(point.count)
                        else:
                            value = float(point.as_int or point.as_double)
                        points.append(
                            Point(service, metric.name, _attributes(point.attributes), value)
                        )
        with self._lock:
            self.points.extend(points)

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def of_job(self, job_id: str) -> list[Span]:
        """Spans of the ops_trace records of `job_id`."""
        with self._lock:
            return [s for s in self.spans if s.attributes.get("tasklane.job_id") == job_id]


@contextmanager
def otlp_receiver(prefix: str = "", auth: tuple[str, str] | None = None) -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver(prefix, auth)
    with serving(receiver.server):
        yield receiver
