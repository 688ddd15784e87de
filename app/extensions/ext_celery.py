"""Celery, built from settings and the queue contract, as a Flask extension."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.exceptions import WorkerLostError
from celery.signals import task_failure
from celery.signals import worker_init
from celery.signals import worker_process_init
from celery.signals import worker_ready
from celery.signals import worker_shutdown
from flask import Flask
from kombu import Exchange
from kombu import Queue

from app import beat
from app import broker_redis
from app import hooks
from app import queues
from app.extensions.ext_database import db
from app.extensions.ext_database import dispose_engine_after_fork
from app.ledger import leases
from app.ledger import outbox
from app.ledger import publishing
from app.ledger.errors import DATABASE_ERRORS
from app.observability import metrics
from app.observability import sentry_tasks
from app.services import tracing
from app.services.mail import notifications
from app.tasking import build_task_class
from config import Settings
from config import settings_of

# Every module whose tasks a worker must know; a module per queue or concern.
TASK_MODULES = [
    "tasks.system",
    "tasks.mail",
    "tasks.maintenance",
    "tasks.generation",
    "tasks.dataset",
    "tasks.ops_trace",
]

# Highest priority a job may ask for; RabbitMQ queues are declared with this maximum.
MAX_PRIORITY = publishing.MAX_PRIORITY


def task_queues() -> list[Queue]:
    return [
        Queue(
            name,
            Exchange(name, type="direct"),
            routing_key=name,
            queue_arguments={"x-max-priority": MAX_PRIORITY + 1},
        )
        for name in queues.QUEUES
    ]


def celery_config(app: Flask, settings: Settings) -> dict[str, Any]:
    broker_url = app.config["CELERY_BROKER_URL"]
    transport: dict[str, Any] = {
        "visibility_timeout": settings.broker.visibility_timeout,
        # Redis emulates priorities with one list per step.
        "queue_order_strategy": "priority",
        "priority_steps": list(range(MAX_PRIORITY + 1)),
        "socket_keepalive": True,
        "max_connections": settings.broker.max_connections,
        "socket_connect_timeout": settings.broker.submit_timeout,
    }
    return {
        "broker_url": broker_url,
        # redis://: kombu's Redis transport without a client built per command
        # (app/broker_redis.py); any other URL, kombu's transport for its scheme.
        "broker_transport": (
            broker_redis.TRANSPORT if str(broker_url).startswith("redis://") else None
        ),
        "result_backend": app.config["CELERY_RESULT_BACKEND"],
        "broker_transport_options": transport,
        "result_backend_transport_options": {
            "visibility_timeout": settings.broker.visibility_timeout
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.broker.submit_timeout,
        # JSON only: a message from the broker must never be able to execute code.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # A job is acknowledged after it ran (its outcome recorded). A killed worker's job
        # comes back through its expired lease (app/ledger/leases.py), published ahead of
        # the backlog: a rejected message would go to the far end of the queue instead,
        # and come back minutes later behind everything waiting.
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # A broker connection loss must not end the worker (celery 5.7.0 bug; see the module).
        "worker_consumer": "app.worker_consumer:Consumer",
        # Long tasks: a worker reserves only what it is about to run.
        "worker_prefetch_multiplier": settings.broker.worker_prefetch_multiplier,
        # Without a cap, a worker pulls every delayed job into memory (celery#9849).
        "worker_eta_task_limit": settings.broker.worker_eta_task_limit,
        "task_soft_time_limit": settings.broker.task_soft_time_limit,
        "task_time_limit": settings.broker.task_time_limit,
        "task_queues": task_queues(),
        # Celery's router sends each task to the queue it declared. Only Celery's own tasks
        # (celery.*) fall back to the default queue; the queue contract test enforces that every
        # Tasklane task declares one, and a publish to an undeclared queue fails (QueueNotFound).
        "task_routes": (declared_queue,),
        "task_default_queue": "dataset",
        "task_create_missing_queues": False,
        # The job ledger holds results and states; the backend serves chords and groups.
        "task_ignore_result": True,
        # One backend object per process: Celery otherwise builds one per thread, which under
        # gevent is one per greenlet, so per task (7 % of an io worker's CPU). Redis and
        # database backends are safe to share (their clients pool connections).
        "result_backend_thread_safe": True,
        "result_extended": True,
        "result_expires": 24 * 3600,
        "timezone": "UTC",
        "enable_utc": True,
        "imports": TASK_MODULES + settings.core.extra_task_modules,
        "beat_schedule": beat_schedule(settings),
        # Any number of beats may run; RedBeat's lock in Redis lets one send (app/beat.py).
        **beat.beat_config(app.config["REDIS_URL"], settings.operations.beat_lock_ttl),
        "worker_hijack_root_logger": False,
        # Task events are for Flower only (the ledger does not need them); see TASK_EVENTS.
        "worker_send_task_events": settings.dashboard.task_events,
        "task_send_sent_event": settings.dashboard.task_events,
    }


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """Periodic jobs from settings: each has an on/off flag and a schedule."""
    declared = [
        (
            settings.operations.purge_expired_jobs_enabled,
            "system.purge_expired_jobs",
            str(settings.operations.purge_expired_jobs_interval),
        ),
        (
            settings.operations.reap_stale_jobs_enabled,
            "maintenance.reap_stale_jobs",
            settings.operations.reap_stale_jobs_schedule,
        ),
        (
            settings.operations.queue_monitor_enabled,
            "maintenance.monitor_queues",
            settings.operations.queue_monitor_schedule,
        ),
        (
            settings.operations.daily_report_enabled,
            "maintenance.daily_report",
            settings.operations.daily_report_schedule,
        ),
    ]
    # Every entry expires: a tick nobody ran before the next one is stale; don't pile them up.
    return {task: beat.entry(task, value) for enabled, task, value in declared if enabled}


def declared_queue(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_kw: Any
) -> dict[str, str] | None:
    """A task_routes router: a task goes to the queue it was declared with (`job_task`).

    Read at publish time, so a task module imported after the app was built routes too; a
    task without a declared queue (Celery's own) falls through to Celery's default.
    """
    declared = getattr(task, "tasklane_queue", None)
    return {"queue": declared} if declared else None


def init_app(app: Flask) -> Celery:
    settings: Settings = settings_of(app)
    celery_app = Celery(app.import_name, task_cls=build_task_class(app))
    celery_app.config_from_object(celery_config(app, settings))
    celery_app.set_default()
    # Load the task modules now, so the API knows every task's signature and queue.
    celery_app.loader.import_default_modules()

    def on_fork(**_kwargs: Any) -> None:
        with app.app_context():
            dispose_engine_after_fork(db.engine)
        dispose_engine_after_fork(app.extensions["ledger_engine"])

    worker_process_init.connect(on_fork, weak=False)
    _connect_ledger(app)
    app.extensions["hooks"] = after_run_hooks(app)
    app.extensions["celery"] = celery_app
    return celery_app


def _ops_trace_hand_off(outcome: hooks.Outcome) -> None:
    # The run's own process only: a trace is built from the run's request and its span.
    task = outcome.task
    if not outcome.in_main_process and getattr(task, "traced", False):
        if not task.request.called_directly:
            tracing.hand_off(outcome)


def after_run_hooks(app: Flask) -> hooks.Registry:
    """What runs after the ledger recorded a run's outcome, in this order."""
    registry = hooks.Registry()
    registry.add("notify", notifications.after_run)
    registry.add("ops_trace", _ops_trace_hand_off)
    registry.add("metrics", metrics.after_run)
    registry.add("sentry", sentry_tasks.after_run_hook(app.extensions["ledger_engine"]))
    return registry


def _connect_ledger(app: Flask) -> None:
    """Every worker main process runs the outbox relay and lease recovery."""

    def on_ready(**_kwargs: Any) -> None:
        outbox.ensure_relay(app)

    def on_shutdown(**_kwargs: Any) -> None:
        outbox.stop_relay(app)

    def on_worker_lost(
        task_id: str | None = None, exception: BaseException | None = None, **_kw: Any
    ) -> None:
        # The pool saw the child running the job die: its lease need not run out first.
        if task_id and isinstance(exception, WorkerLostError):
            try:
                leases.expire(app.extensions["ledger_engine"], task_id)
            except DATABASE_ERRORS:
                pass  # the lease expires by itself

    worker_init.connect(lambda **_kw: outbox.mark_worker(), weak=False)
    worker_process_init.connect(lambda **_kw: outbox.mark_worker(), weak=False)
    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
    task_failure.connect(on_worker_lost, weak=False)
