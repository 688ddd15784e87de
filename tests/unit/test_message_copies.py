"""A batch's copied messages are exactly what Celery's `apply_async` publishes for each job."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from celery import Celery
from celery import signals
from flask import Flask
from kombu import Producer

from app.ledger import publishing
from app.ledger.message_copies import Copies
from app.models.base import new_id

Sent = list[tuple[Any, dict[str, Any]]]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sent]:
    """What kombu was asked to publish; nothing reaches the broker."""
    published: Sent = []

    def record(_producer: Producer, body: Any, **kwargs: Any) -> None:
        published.append((body, kwargs))

    monkeypatch.setattr(Producer, "publish", record)
    yield published


def _job(value: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "task": "tests.echo",
        "queue": "dataset",
        "args": {"value": value},
        "eta": None,
        "priority": None,
        "notify_to": None,
        **extra,
    }


def _both_ways(app: Flask, sent: Sent, jobs: list[dict[str, Any]]) -> tuple[Sent, Sent]:
    """The messages of `jobs` through Copies, then each through apply_async whole."""
    celery: Celery = app.extensions["celery"]
    with app.app_context(), celery.producer_or_acquire() as producer:
        copies = Copies(celery, producer)
        for job in jobs:
            copies.publish(job, functools.partial(publishing.publish, celery, job, timeout=1))
        through_copies = list(sent)
        sent.clear()
        for job in jobs:
            publishing.publish(celery, job, timeout=1, producer=producer)
        return through_copies, list(sent)


def _same(copied: Sent, whole: Sent) -> list[bool]:
    """Asserts the two are the same messages; which of `copied` were copies."""
    assert len(copied) == len(whole)
    copies = []
    for (copy_body, copy_options), (body, options) in zip(copied, whole, strict=True):
        assert tuple(copy_body) == tuple(body)
        # Only kombu's retry wrapper differs: inside a batch the flush is what can fail.
        copies.append(copy_options.pop("retry") is False)
        assert options.pop("retry") is True
        assert copy_options == options
    return copies


def test_copies_of_one_shape_are_the_messages_celery_builds(app: Flask, sent: Sent) -> None:
    urgent = {"priority": 7, "notify_to": ["a@example.com"]}
    jobs = [_job(i) for i in range(4)] + [_job(9, **urgent), _job(10, **urgent)]
    jobs += [_job(11, queue="mail"), _job(12, priority=7)]

    copied, whole = _both_ways(app, sent, jobs)

    assert [options["headers"]["id"] for _, options in copied] == [job["id"] for job in jobs]
    # The first job of each shape (task, queue, priority, headers) is built by Celery.
    assert _same(copied, whole) == [False, True, True, True, False, True, False, False]


def test_a_job_with_an_eta_is_built_whole(app: Flask, sent: Sent) -> None:
    eta = datetime.now(UTC) + timedelta(minutes=5)
    jobs = [_job(1, eta=eta), _job(2, eta=eta + timedelta(seconds=1))]

    copied, whole = _both_ways(app, sent, jobs)

    assert [options["headers"]["eta"] for _, options in copied] == [
        eta.isoformat(),
        (eta + timedelta(seconds=1)).isoformat(),
    ]
    assert _same(copied, whole) == [False, False]


def test_a_message_carrying_its_id_elsewhere_is_never_copied(app: Flask, sent: Sent) -> None:
    def stamp(headers: dict[str, Any], **_kw: Any) -> None:
        headers["x-job"] = headers["id"]

    signals.before_task_publish.connect(stamp)
    try:
        copied, whole = _both_ways(app, sent, [_job(i) for i in range(3)])
    finally:
        signals.before_task_publish.disconnect(stamp)

    assert [options["headers"]["x-job"] for _, options in copied] == [
        options["headers"]["id"] for _, options in copied
    ]
    assert _same(copied, whole) == [False, False, False]


def test_with_task_sent_events_every_message_is_built_whole(app: Flask, sent: Sent) -> None:
    celery: Celery = app.extensions["celery"]
    before = celery.conf.task_send_sent_event
    celery.conf.task_send_sent_event = True
    try:
        copied, _ = _both_ways(app, sent, [_job(i) for i in range(3)])
    finally:
        celery.conf.task_send_sent_event = before

    tasks = [options for _, options in copied if "task" in (options.get("headers") or {})]
    assert len(tasks) == 3
    assert all(options["retry"] is True for options in tasks)
