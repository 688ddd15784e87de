"""Template filters: times, ages and durations as an operator reads them, and outside links."""

from __future__ import annotations

import json
from datetime import datetime
from datetime import timedelta
from typing import Any

from app.dashboard.blueprint import bp
from app.models.base import utcnow


@bp.app_template_filter("dt")
def format_datetime(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


@bp.app_template_filter("duration")
def format_duration(value: timedelta | float | None) -> str:
    if value is None:
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@bp.app_template_filter("ago")
def format_ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    return f"{format_duration(utcnow() - value)} ago"


@bp.app_template_filter("pretty_json")
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def outside_link(base: str | None, value: str | None) -> str | None:
    """The URL of `value` under a configured base (DASHBOARD_TRACE_URL, DASHBOARD_SENTRY_URL).

    A base with `{id}` has the id put there; otherwise the id is appended.
    """
    if not base or not value:
        return None
    return base.replace("{id}", value) if "{id}" in base else base + value
