"""No task can be shipped that would sit on a queue nobody listens to."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import QueueNotFound
from flask import Flask

from app import queues
from app.tasking import job_task

ROOT = Path(__file__).resolve().parents[2]


def tasklane_tasks(app: Flask) -> dict[str, object]:
    return {
        name: task
        for name, task in app.extensions["celery"].tasks.items()
        if not name.startswith("celery.")
    }


def test_every_registered_task_goes_to_a_declared_queue_a_profile_serves(app: Flask) -> None:
    served = {name for profile in queues.PROFILES for name in queues.profile_queues(profile)}
    tasks = tasklane_tasks(app)
    assert "system.canary" in tasks
    for name, task in tasks.items():
        declared = getattr(task, "tasklane_queue", None)
        assert declared in queues.QUEUES, (
            f"{name} declares queue {declared!r}, not in app/queues.py"
        )
        assert declared in served, f"{name}: no worker profile consumes {declared!r}"
        assert routed_queue(app, task) == declared, f"{name} is not routed to {declared!r}"


def routed_queue(app: Flask, task: Any) -> str:
    """The queue Celery's own router picks for `task` when it is published without options."""
    router = app.extensions["celery"].amqp.router
    options = router.route({}, task.name, (), {}, task)
    return str(options["queue"].name)


def test_celery_knows_exactly_the_declared_queues(app: Flask) -> None:
    conf = app.extensions["celery"].conf
    assert {q.name for q in conf.task_queues} == set(queues.QUEUES)
    assert conf.task_create_missing_queues is False
    assert conf.task_default_queue in queues.QUEUES


def test_publishing_to_an_undeclared_queue_fails_loudly(app: Flask) -> None:
    canary = app.extensions["celery"].tasks["system.canary"]
    with pytest.raises(QueueNotFound):
        canary.apply_async(queue="nobody-listens")


def test_declaring_a_task_on_an_unknown_queue_fails_at_import() -> None:
    with pytest.raises(queues.UnknownQueueError, match="not declared"):
        job_task("x.y", queue="nowhere", soft_time_limit=1, time_limit=2, max_retries=0)


def test_entrypoint_profiles_together_consume_every_queue() -> None:
    consumed: set[str] = set()
    for profile in queues.PROFILES:
        out = subprocess.run(
            [
                "python",
                "-c",
                "import sys; from app.queues import main; sys.exit(main(sys.argv[1:]))",
                "profile",
                profile,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        pool, _concurrency, _prefetch, names = out
        assert pool == queues.PROFILES[profile].pool
        consumed |= set(names.split(","))
    assert consumed == set(queues.QUEUES)


def test_readme_queue_table_is_generated_from_the_declaration() -> None:
    readme = (ROOT / "README.md").read_text()
    assert queues.markdown_table() in readme, (
        "README's queue table is stale: paste the output of `python -m app.queues table`"
    )


def test_readme_documents_every_setting() -> None:
    from config import ENV_NAMES

    readme = (ROOT / "README.md").read_text()
    missing = [name for name in sorted(ENV_NAMES) if f"`{name}`" not in readme]
    assert not missing, f"README's configuration tables lack: {', '.join(missing)}"
