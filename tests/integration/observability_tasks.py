"""Tasks for the observability tests (loaded by their own workers via
TASKLANE_EXTRA_TASK_MODULES), and the short beat schedule their beat runs."""

from __future__ import annotations

import logging
import os
from datetime import UTC
from datetime import datetime

from celery import Task
from celery import chord
from celery import current_app
from flask import current_app as flask_app

from app.settings import reveal
from tests.support.short_tasks import short_task

log = logging.getLogger(__name__)

# Set in the observability beat's environment: it then runs the two cron entries below.
CRON_ENV = "TASKLANE_TEST_CRON"
# Long ago, so both entries are due at beat's first tick; 60 s is Sentry Crons' shortest interval.
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@short_task("obs.boom", queue="dataset", public=True)
def boom(self: Task, text: str = "") -> None:
    """Fails like a provider call echoing its key would; `text` stands for document text."""
    key = reveal(flask_app.config["SETTINGS"].dataset.embedding_api_key)
    raise RuntimeError(f"provider rejected the request made with key {key}")


@short_task("obs.io_boom", queue="generation", public=True)
def io_boom(self: Task, text: str = "") -> None:
    password = reveal(flask_app.config["SETTINGS"].mail.smtp_password)
    raise RuntimeError(f"SMTP login refused for password {password}")


@short_task("obs.leak", queue="dataset", public=True)
def leak(self: Task) -> None:
    """Fails quoting every secret setting, the way a careless driver or client error would."""
    settings = flask_app.config["SETTINGS"]
    quoted = [
        f"SECRET_KEY={reveal(settings.core.secret_key)}",
        f"smtp {reveal(settings.mail.smtp_password)}",
        f"embedding key {reveal(settings.dataset.embedding_api_key)}",
        f"langfuse {reveal(settings.tracing.langfuse_secret_key)}",
        f"database {reveal(settings.database.url)}",
        *(
            f"provider {name} key {reveal(p.api_key)}"
            for name, p in settings.generation.providers.items()
        ),
    ]
    log.warning("about to fail with %s", "; ".join(quoted))
    raise RuntimeError("could not connect: " + "; ".join(quoted))


@short_task("obs.fan_out", queue="dataset", public=True)
def fan_out(self: Task, parts: int) -> dict[str, int]:
    """Starts a chord: header parts on the gevent queue, the callback back on prefork."""
    log.info("fanning out into %d parts", parts)
    chord(part.s(i) for i in range(parts))(gather.s())
    return {"parts": parts}


@short_task("obs.part", queue="generation", ignore_result=False)
def part(self: Task, index: int) -> int:
    return index * index


@short_task("obs.gather", queue="dataset", ignore_result=False)
def gather(self: Task, results: list[int]) -> int:
    return sum(results)


@short_task("obs.tick", queue="generation")
def tick(self: Task) -> str:
    return "tick"


@short_task("obs.tick_fail", queue="dataset")
def tick_fail(self: Task) -> None:
    raise RuntimeError("the periodic job failed")


def _add_cron_entries() -> None:
    # At import, which the app factory does before beat builds its schedule.
    for name, task in (("obs-cron-ok", "obs.tick"), ("obs-cron-fail", "obs.tick_fail")):
        current_app.conf.beat_schedule[name] = {
            "task": task,
            "schedule": 60.0,
            "last_run_at": LONG_AGO,
        }


if os.environ.get(CRON_ENV):
    _add_cron_entries()
