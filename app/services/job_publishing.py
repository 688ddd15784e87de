"""Publishing submitted jobs after their rows committed; the relay publishes what the
broker did not take (app/ledger/outbox.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Celery
from flask import current_app

from app.ledger import outbox
from app.ledger import publishing
from app.ledger.publishing import BROKER_ERRORS
from app.services.beside import beside
from config import settings_of

log = logging.getLogger(__name__)


class _BrokerState:
    """After a failed publish, requests leave publishing to the relay for a while."""

    lock = threading.Lock()
    down_until = 0.0


def publish_after_commit(celery_app: Celery, job: dict[str, Any], *, timeout: float) -> None:
    """Publish a committed job; if the broker is away, the relay publishes it later."""
    publish_all_after_commit(celery_app, [job], timeout=timeout)


def publish_all_after_commit(
    celery_app: Celery,
    messages: list[dict[str, Any]],
    *,
    timeout: float,
    commit: Callable[[], object] | None = None,
) -> None:
    """Publish committed jobs on one producer; what the broker did not take, the relay does.

    `commit` (a batch's INSERT) writes the jobs' rows beside the building of their
    messages, which leave only once it returned: its error discards them and is raised.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    settings = settings_of(app)
    if settings.ledger.relay_in_api and not outbox.in_worker():
        outbox.ensure_relay(app)
    with beside(commit) as committed:
        if not messages or time.monotonic() < _BrokerState.down_until:
            committed()
            return
        sent: list[str] = []
        try:
            publishing.publish_all(
                celery_app, messages, timeout=timeout, sent=sent, before_flush=committed
            )
        except BROKER_ERRORS as exc:
            committed()  # the rows stand; their messages are the relay's now
            with _BrokerState.lock:
                _BrokerState.down_until = time.monotonic() + float(settings.ledger.relay_grace)
            log.warning(
                "broker unreachable (%s); %d of %d jobs (first %s) stay queued and the relay "
                "publishes them when the broker is back",
                type(exc).__name__,
                len(messages) - len(sent),
                len(messages),
                messages[len(sent)]["id"],
            )
    if sent:
        outbox.confirm(app, *sent)
