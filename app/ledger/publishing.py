"""Publishing jobs' messages: one job's, or many on one producer in one pipelined write.

The outbox (app/ledger/outbox.py) decides when a job is published; this is how: through
Celery's `apply_async`, so routing, time limits, signals and tracing headers are Celery's,
with the first message of each shape of a batch built by Celery and the rest copied from it
(app/ledger/message_copies.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu import Producer
from kombu import Queue
from kombu.exceptions import BatchPublishError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from app.ledger.message_copies import Copies

# BatchPublishError: a pipelined batch failed, its delivery uncertain (Redis went away
# mid-flush): the relay publishes it again, which a job tolerates. OSError covers the
# socket's ConnectionError and TimeoutError.
BROKER_ERRORS = (KombuOperationalError, BatchPublishError, RedisError, OSError)
# Set on the messages of jobs that have `notify_to`, so a worker looks the job up after the
# run only for them (app.services.mail.notifications); every other job pays nothing.
NOTIFY_HEADER = "tasklane_notify"
# Highest priority a job may ask for (the API's 9); the broker's scale is set in ext_celery.
MAX_PRIORITY = 9


def broker_priority(celery_app: Celery, priority: int | None) -> int | None:
    if priority is None:
        return None
    # The API says 9 is most urgent; kombu's Redis transport serves 0 first.
    url = str(celery_app.conf.broker_url or "")
    return MAX_PRIORITY - priority if url.startswith("redis") else priority


def publish(
    celery_app: Celery,
    job: dict[str, Any],
    *,
    timeout: float,
    urgent: bool = False,
    producer: Producer | None = None,
    declare: list[Queue] | None = None,
) -> None:
    """Send the job's message; raises one of BROKER_ERRORS when the broker is away.

    `urgent` (a lost attempt's next one) goes ahead of the queue's backlog. Without a
    `producer`, one is taken from the app's producer pool (kept connections, reused
    across requests) and given back.
    """
    task = celery_app.tasks[job["task"]]
    options: dict[str, Any] = {
        "task_id": job["id"],
        "queue": job["queue"],
        "retry": True,
        "retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": timeout / 2,
            "interval_max": timeout / 2,
        },
    }
    if job.get("eta") is not None:
        options["eta"] = job["eta"]
    priority = broker_priority(celery_app, MAX_PRIORITY if urgent else job.get("priority"))
    if priority is not None:
        options["priority"] = priority
    if job.get("notify_to"):
        options["headers"] = {NOTIFY_HEADER: True}
    if declare is not None:
        options["declare"] = declare
    task.apply_async(kwargs=job["args"] or {}, producer=producer, **options)


def publish_all(
    celery_app: Celery,
    jobs: list[dict[str, Any]],
    *,
    timeout: float,
    sent: list[str],
    before_flush: Callable[[], None] | None = None,
) -> None:
    """Send many jobs' messages in ONE pipelined publish on one pooled producer.

    kombu's producer batch buffers every message (and its task-sent event) and writes
    them in one Redis pipeline when the block ends; transports without batches publish
    each at once. Celery builds the first message of each shape, the others are its
    copies (app/ledger/message_copies.py). The ids are added to `sent` only once the whole
    batch went out: after one of BROKER_ERRORS, what may have gone is published again by
    the relay, which a job tolerates (an attempt starts only from `queued`).
    `before_flush` runs once every message is built; an error from it discards them all.
    """
    with celery_app.producer_or_acquire() as producer:
        # Per message: its LPUSH and its event's PUBLISH (and a PEXPIRE per priority step
        # for queues with an expiry): room for all, so the batch is one flush.
        bound: dict[str, list[Queue]] = {}
        with producer.batch(max_size=max(1, 16 * len(jobs))):
            copies = Copies(celery_app, producer)
            for job in jobs:
                queue = job["queue"]
                if queue not in bound:
                    # Bound to the producer's channel once: kombu would otherwise copy
                    # the queue and its exchange to bind them, for every message.
                    bound[queue] = [celery_app.amqp.queues[queue].bind(producer.channel)]
                copies.publish(
                    job,
                    functools.partial(
                        publish, celery_app, job, declare=bound[queue], timeout=timeout
                    ),
                )
            if before_flush is not None:
                before_flush()
    sent.extend(job["id"] for job in jobs)
