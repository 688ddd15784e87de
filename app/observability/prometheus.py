"""GET /metrics: the API process's OpenTelemetry metrics in Prometheus' text format.

No API key: Prometheus scrapes it, and it shows counts, never job content.
"""

from __future__ import annotations

from flask import Blueprint
from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import REGISTRY
from prometheus_client import generate_latest

blp = Blueprint("metrics", __name__)


@blp.route("/metrics")
def scrape() -> Response:
    """Queue depth and the API process's own metrics (registered only when enabled)."""
    return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)
