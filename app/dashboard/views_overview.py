"""Overview: queues, workers, the per-minute chart and beat."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response
from flask import current_app
from flask import jsonify
from flask import render_template

from app.dashboard import beat_status
from app.dashboard import live
from app.dashboard import queries
from app.dashboard.blueprint import bp
from config import current_settings


def _celery() -> Any:
    return current_app.extensions["celery"]


@bp.route("/")
def overview() -> str:
    """The page shell: chart data and beat now; queues and workers arrive through htmx."""
    throughput = queries.finished_per_minute()
    beat = beat_status.read(_celery())
    return render_template(
        "dashboard/overview.html",
        throughput=asdict(throughput),
        beat=beat,
        refresh_seconds=current_settings().dashboard.refresh_seconds,
    )


@bp.route("/live")
def live_panel() -> str:
    """Queues (waiting, oldest, consumers) and workers (pool, concurrency, running)."""
    timeout = float(current_settings().broker.inspect_timeout)
    snap = live.snapshot(_celery(), timeout, queries.running_by_worker())
    return render_template("dashboard/_live.html", snap=snap)


@bp.route("/throughput.json")
def throughput_json() -> Response:
    """The chart's series, refreshed by the overview page once a minute."""
    return jsonify(asdict(queries.finished_per_minute()))
