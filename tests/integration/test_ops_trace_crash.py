"""A ship message has no ledger row and no lease to bring it back: when the process running
it dies mid-export, the broker must get it back (acks_late + reject_on_worker_lost), and the
span still arrives once the collector is up."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.support import services
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.otlp_receiver import otlp_receiver
from tests.support.side_stack import side_stack
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(child) for child in fh.read().split()]


@pytest.fixture
def collector() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as receiver:
        receiver.down = True
        yield receiver


@pytest.fixture
def ship_settings(base_settings: dict[str, Any], collector: OtlpReceiver) -> dict[str, Any]:
    return {
        **base_settings,
        "TRACE_SINKS": "otlp",
        "TRACE_OTLP_ENDPOINT": collector.endpoint + "/v1/traces",
        # One export keeps retrying the down collector for long enough to be killed in;
        # and no Celery retry: only a redelivery can still ship the record.
        "TRACE_SHIP_TIMEOUT": "60",
        "TRACE_SHIP_MAX_ATTEMPTS": "1",
    }


@pytest.fixture
def ship_stack(
    app: Flask, ship_settings: dict[str, Any], worker_env: dict[str, str], session_tmp: Path
) -> Iterator[tuple[Flask, WorkerProcess]]:
    """One prefork child serving ops_trace on a Redis of its own, shipping to `collector`."""
    # A server of its own: the shared one's database indexes may all be claimed.
    with (
        services.embedded_redis_server(session_tmp / "ship-crash-redis") as redis_url,
        side_stack(
            ship_settings,
            worker_env,
            session_tmp,
            "ship-crash",
            queues=["ops_trace"],
            REDIS_URL=redis_url,
        ) as side,
    ):
        try:
            yield side.app, side.worker
        finally:
            app.extensions["celery"].set_default()


def test_a_ship_message_whose_process_dies_mid_export_is_shipped_by_the_next(
    ship_stack: tuple[Flask, WorkerProcess], collector: OtlpReceiver
) -> None:
    ship_app, worker = ship_stack
    assert worker.process is not None
    job_id = str(uuid.uuid4())
    record = {"id": str(uuid.uuid4()), "operation": "tests.echo", "status": "succeeded"}
    ship_app.extensions["celery"].send_task(
        "ops_trace.ship", kwargs={"record": {**record, "job_id": job_id}}, queue="ops_trace"
    )
    wait_for(lambda: collector.refused, what="the ship to reach the down collector")
    [child] = _children(worker.process.pid)
    os.kill(child, signal.SIGKILL)
    collector.down = False

    [span] = wait_for(lambda: collector.of_job(job_id), what=f"the span of {job_id} after a kill")
    assert span.name == "tests.echo"
