"""The operator's console (/dashboard) and Flower."""

from __future__ import annotations

from pydantic import SecretStr

from app.settings.base import Concern
from app.settings.base import env


class DashboardSettings(Concern):
    # Seconds between two refreshes of the overview's queue and worker panels.
    refresh_seconds: float = env("DASHBOARD_REFRESH_SECONDS", 2.0, ge=0.5)
    # Base URLs that make a job's trace id and Sentry event id links; `{id}` marks where the
    # id goes, else it is appended (e.g. https://jaeger.example/trace/).
    trace_url: str | None = env("DASHBOARD_TRACE_URL")
    sentry_url: str | None = env("DASHBOARD_SENTRY_URL")
    # `./entrypoint.sh flower`: "user:password" (comma separate several); Flower refuses to
    # start without it, because it can revoke tasks and shut workers down.
    flower_basic_auth: SecretStr | None = env("FLOWER_BASIC_AUTH")
    flower_port: int = env("FLOWER_PORT", 5555, ge=1, le=65535)
    # Celery task events from the start (workers' received/started/succeeded, the API's
    # sent). Off by default: they are three broker publishes per job that only a monitor
    # reads, a quarter of a prefork worker's main-process CPU on short jobs, and Flower
    # switches workers' events on by itself while it runs (its `enable_events` broadcast,
    # every 5 s). On: Flower also sees tasks sent and run before it started.
    task_events: bool = env("TASK_EVENTS", False)
