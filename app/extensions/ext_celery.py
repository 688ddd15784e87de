"""Celery, built from settings and the queue contract, as a Flask extension."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from flask import Flask
from kombu import Exchange
from kombu import Queue

from app import queues
from app.extensions.ext_database import db
from app.extensions.ext_database import dispose_engine_after_fork
from app.tasking import build_task_class
from app.tasking import route_task
from config import Settings

# Every module whose tasks a worker must know; a module per queue or concern.
TASK_MODULES = ["tasks.system"]

# Highest priority a job may ask for; RabbitMQ queues are declared with this maximum.
MAX_PRIORITY = 9


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
        "visibility_timeout": settings.BROKER_VISIBILITY_TIMEOUT,
        # Redis emulates priorities with one list per step.
        "queue_order_strategy": "priority",
        "priority_steps": list(range(MAX_PRIORITY + 1)),
        "socket_keepalive": True,
        "socket_connect_timeout": settings.SUBMIT_BROKER_TIMEOUT,
    }
    return {
        "broker_url": broker_url,
        "result_backend": app.config["CELERY_RESULT_BACKEND"],
        "broker_transport_options": transport,
        "result_backend_transport_options": {
            "visibility_timeout": settings.BROKER_VISIBILITY_TIMEOUT
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.SUBMIT_BROKER_TIMEOUT,
        # JSON only: a message from the broker must never be able to execute code.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # A job is acknowledged after it ran; a killed worker's job goes back to the queue.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Long tasks: a worker reserves only what it is about to run.
        "worker_prefetch_multiplier": settings.WORKER_PREFETCH_MULTIPLIER,
        "task_soft_time_limit": settings.TASK_SOFT_TIME_LIMIT,
        "task_time_limit": settings.TASK_TIME_LIMIT,
        "task_queues": task_queues(),
        # Only Celery's own housekeeping tasks (celery.*) fall back here; every Tasklane
        # task names its queue, and the queue contract test enforces that.
        "task_default_queue": "dataset",
        "task_create_missing_queues": False,
        "task_routes": (route_task,),
        # The job ledger holds results and states; the backend serves chords and groups.
        "task_ignore_result": True,
        "result_extended": True,
        "result_expires": 24 * 3600,
        "timezone": "UTC",
        "enable_utc": True,
        "imports": TASK_MODULES + settings.TASKLANE_EXTRA_TASK_MODULES,
        "beat_schedule": beat_schedule(settings),
        "worker_hijack_root_logger": False,
    }


def beat_schedule(settings: Settings) -> dict[str, Any]:
    schedule: dict[str, Any] = {}
    if settings.PURGE_EXPIRED_JOBS_ENABLED:
        schedule["system.purge_expired_jobs"] = {
            "task": "system.purge_expired_jobs",
            "schedule": float(settings.PURGE_EXPIRED_JOBS_INTERVAL),
            # A tick nobody ran before the next one is stale; don't pile them up.
            "options": {"expires": settings.PURGE_EXPIRED_JOBS_INTERVAL},
        }
    return schedule


def init_app(app: Flask) -> Celery:
    settings: Settings = app.config["SETTINGS"]
    celery_app = Celery(app.import_name, task_cls=build_task_class(app))
    celery_app.config_from_object(celery_config(app, settings))
    celery_app.set_default()
    # Load the task modules now, so the API knows every task's signature and queue.
    celery_app.loader.import_default_modules()

    def on_fork(**_kwargs: Any) -> None:
        with app.app_context():
            dispose_engine_after_fork(db.engine)

    worker_process_init.connect(on_fork, weak=False)
    app.extensions["celery"] = celery_app
    return celery_app
