"""Faults lose nothing: a killed worker's job runs again as its next attempt within 30 s, a
job committed by an API process killed before publishing is published by the relay, a
retrying job whose message the broker lost is published again, and a broker outage at
submit refuses no work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.extensions.ext_database import db
from app.ledger import outbox
from app.models import Job
from tests.conftest import app_without_broker
from tests.conftest import make_settings
from tests.support.api import Api
from tests.support.logged_process import ROOT
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

# From the kill to the next attempt's start. A peer always takes the next attempt, so nothing
# waits for a restart: the cpu worker's other prefork child, or the session's io worker
# beside a killed gevent worker. The 30 s at p95 is a figure bench/faults.py
# measures (p95 15.2 s); here the deadline only bounds the wait (lease TTL 15 s, then the
# recovery loop and a busy machine), and wait_for stretches it further by the load.
NEXT_ATTEMPT_DEADLINE = 90.0
# Control replies (pause and resume a queue's consumers) on a busy machine.
CONTROL_TIMEOUT = 10.0


def _consumers_of(celery_app: Any, queue: str, workers: dict[str, WorkerProcess]) -> list[str]:
    """The session workers that consume `queue`, each asked by name."""
    hosts = [worker.hostname for worker in workers.values()]
    inspect = celery_app.control.inspect(
        destination=hosts, timeout=CONTROL_TIMEOUT, limit=len(hosts)
    )
    active = inspect.active_queues() or {}
    assert set(active) == set(hosts), f"no answer from {set(hosts) - set(active)}"
    return [host for host, queues in active.items() if any(q["name"] == queue for q in queues)]


@contextmanager
def _queue_paused(
    celery_app: Any, queue: str, workers: dict[str, WorkerProcess]
) -> Iterator[list[str]]:
    """No session worker takes `queue` inside the block; each one that did takes it after.

    Asked by name with a reply awaited from each, so a slow reply on a busy machine cannot
    leave a worker paused (or resume one that never consumed the queue).
    """
    consumers = _consumers_of(celery_app, queue, workers)
    replies = celery_app.control.cancel_consumer(
        queue, destination=consumers, reply=True, timeout=CONTROL_TIMEOUT, limit=len(consumers)
    )
    assert len(replies or []) == len(consumers), f"pausing {queue}: replies {replies}"
    # A worker replies before it acts (celery schedules the cancel on its loop): wait until
    # none of them consumes the queue any more.
    wait_for(
        lambda: not _consumers_of(celery_app, queue, workers),
        timeout=CONTROL_TIMEOUT,
        interval=0.1,
        what=f"the workers to stop consuming {queue}",
    )
    try:
        yield consumers
    finally:
        celery_app.control.add_consumer(
            queue,
            destination=consumers,
            reply=True,
            timeout=CONTROL_TIMEOUT,
            limit=len(consumers),
        )
        # As for the pause: the reply comes before the worker acts. The next test must find
        # the queue consumed again, not wait behind a resume still in flight.
        wait_for(
            lambda: set(consumers) <= set(_consumers_of(celery_app, queue, workers)),
            timeout=CONTROL_TIMEOUT * 6,
            interval=0.2,
            what=f"{consumers} to consume {queue} again",
        )


def _started_pids(markers: Path, job_id: str) -> list[str]:
    path = markers / f"{job_id}.started"
    return path.read_text().split() if path.exists() else []


def _assert_attempts_truthful(done: dict[str, Any], killed_pid: int, markers: Path) -> None:
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 2
    first, second = done["attempt_log"]
    assert (first["number"], first["outcome"], first["error"]["type"]) == (1, "lost", "WorkerLost")
    assert (second["number"], second["outcome"], second["error"]) == (2, "succeeded", None)
    # Never two attempts at once: the first ended (was found lost) before the second began.
    assert datetime.fromisoformat(first["finished_at"]) <= datetime.fromisoformat(
        second["started_at"]
    )
    started = _started_pids(markers, done["id"])
    assert len(started) == 2 and started[0] == str(killed_pid) and started[1] != str(killed_pid)
    assert (markers / f"{done['id']}.done").read_text().count("\n") == 1


def _kill_mid_task_and_wait(api: Api, job_id: str, pid: int, markers: Path) -> dict[str, Any]:
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(
        lambda: len(_started_pids(markers, job_id)) == 2,
        timeout=NEXT_ATTEMPT_DEADLINE,
        interval=0.2,
        what=f"job {job_id}'s next attempt to start within {NEXT_ATTEMPT_DEADLINE}s of the kill",
    )
    print(f"kill -> next attempt: {time.monotonic() - killed:.1f}s")
    return api.wait(job_id, timeout=60)


def test_sigkilled_prefork_child_job_runs_again_as_its_next_attempt(
    api: Api, markers: Path
) -> None:
    job = api.submit(
        "tests.steps", args={"count": 30, "interval": 0.05, "marker_dir": str(markers)}
    )
    running = api.wait_progress(job["id"], at_least=2)
    pid = int(running["progress"]["message"].removeprefix("pid="))

    done = _kill_mid_task_and_wait(api, job["id"], pid, markers)

    _assert_attempts_truthful(done, pid, markers)


@pytest.fixture
def gevent_victim(
    app: Flask, worker_env: dict[str, str], session_tmp: Path, workers: dict[str, WorkerProcess]
) -> Iterator[tuple[WorkerProcess, list[str]]]:
    """A gevent worker that alone consumes `generation`, and the workers it paused."""
    celery_app = app.extensions["celery"]
    victim = WorkerProcess.celery(
        "gevent-victim", "-P gevent -c 5 -Q generation", env=worker_env, log_dir=session_tmp
    )
    with _queue_paused(celery_app, "generation", workers) as paused:
        assert paused, "no session worker consumes generation: no peer for the next attempt"
        try:
            yield victim.start(celery_app), paused
        finally:
            victim.stop()


def test_sigkilled_gevent_worker_job_runs_again_as_its_next_attempt(
    app: Flask, api: Api, markers: Path, gevent_victim: tuple[WorkerProcess, list[str]]
) -> None:
    victim, paused = gevent_victim
    job = api.submit(
        "tests.io_steps", args={"count": 40, "interval": 0.05, "marker_dir": str(markers)}
    )
    running = api.wait_progress(job["id"], at_least=2)
    pid = int(running["progress"]["message"].removeprefix("pid="))
    assert victim.process is not None and pid == victim.process.pid
    # The session's io worker takes the queue back, to run the next attempt: a peer that
    # is up already, so the next attempt waits for no restart.
    replies = app.extensions["celery"].control.add_consumer(
        "generation",
        destination=paused,
        reply=True,
        timeout=CONTROL_TIMEOUT,
        limit=len(paused),
    )
    assert len(replies or []) == len(paused), f"resuming generation: replies {replies}"

    done = _kill_mid_task_and_wait(api, job["id"], pid, markers)
    victim.process.wait()

    _assert_attempts_truthful(done, pid, markers)


def test_api_killed_between_commit_and_publish_is_published_by_the_relay(
    app: Flask, api: Api, api_token: str, worker_env: dict[str, str], markers: Path
) -> None:
    key = f"killed-api-{os.getpid()}-{time.monotonic_ns()}"
    body = {"task": "tests.record", "args": {"marker_dir": str(markers)}, "idempotency_key": key}
    # The fault is this script's own: it replaces the publish with a SIGKILL, so the
    # process dies right after the job's row committed (no setting in production config).
    script = (
        "import json, os, signal, sys\n"
        "from app import create_app\n"
        "from app.ledger import publishing\n"
        "publishing.publish = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
        "client = create_app().test_client()\n"
        "client.post('/api/v1/jobs', json=json.loads(sys.argv[1]),"
        " headers={'Authorization': 'Bearer ' + sys.argv[2]})\n"
    )
    api_process = subprocess.run(
        [sys.executable, "-c", script, json.dumps(body), api_token],
        cwd=ROOT,
        env=worker_env,
        capture_output=True,
        timeout=120,
    )
    assert api_process.returncode == -signal.SIGKILL, api_process.stderr.decode()
    killed = time.monotonic()

    def committed() -> str | None:
        with app.app_context():
            found = db.session.scalar(select(Job.id).where(Job.idempotency_key == key))
            db.session.rollback()
            return found

    job_id = wait_for(committed, timeout=5, what="the killed API's committed job row")
    wait_for(
        lambda: (markers / f"{job_id}.ran").exists(),
        timeout=10 + 2,
        interval=0.2,
        what="the relay to publish the job of the killed API within 10 s",
    )
    print(f"API killed -> job ran: {time.monotonic() - killed:.1f}s")
    done = api.wait(job_id)
    assert (done["state"], done["attempts"]) == ("succeeded", 1)


def test_submit_with_broker_down_answers_202_and_the_job_runs_once_it_is_reachable(
    base_settings: dict[str, Any], api: Api, markers: Path
) -> None:
    # The workers' relays (which reach the broker) publish what this API process accepted.
    down = app_without_broker(base_settings)
    body = {"task": "tests.record", "args": {"marker_dir": str(markers)}}

    response = down.test_client().post("/api/v1/jobs", json=body, headers=api.auth)

    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["state"] == "queued"
    done = api.wait(job["id"], timeout=30)
    assert (done["state"], done["attempts"]) == ("succeeded", 1)
    assert (markers / f"{job['id']}.ran").read_text().count("\n") == 1


def _drop_messages(client: redis.Redis, job_id: str) -> int:
    """Delete `job_id`'s messages from every queue list of the broker: the broker lost them."""
    dropped = 0
    for key in client.scan_iter(count=1000):
        if client.type(key) != b"list":
            continue
        for raw in client.lrange(key, 0, -1):
            try:
                found = json.loads(raw)["headers"]["id"] == job_id
            except (TypeError, ValueError, KeyError):
                continue
            if found:
                dropped += int(client.lrem(key, 0, raw))
    return dropped


def _held(client: redis.Redis, job_id: str) -> int:
    """Messages of `job_id` that workers hold (kombu's unacked hash)."""
    held = 0
    for raw in client.hvals("unacked"):
        try:
            held += json.loads(raw)[0]["headers"]["id"] == job_id
        except (TypeError, ValueError, KeyError, IndexError):
            continue
    return held


def test_a_retrying_job_whose_message_the_broker_lost_is_published_again(
    app: Flask,
    api: Api,
    markers: Path,
    base_settings: dict[str, Any],
    workers: dict[str, WorkerProcess],
) -> None:
    celery_app = app.extensions["celery"]
    client = redis.Redis.from_url(str(celery_app.conf.broker_url), socket_timeout=5)
    job = api.submit("tests.retry_once", args={"marker_dir": str(markers), "countdown": 1})
    ran = markers / f"{job['id']}.ran"
    wait_for(ran.exists, timeout=60, interval=0.1, what="the job's first run to start")
    # Nobody takes the queue while the retry's message waits in the broker.
    with _queue_paused(celery_app, "generation", workers):
        # On a busy machine the relay may have published the job a second time (its intent
        # was not confirmed within the grace): that copy must not stand in for the retry.
        # Copies still queued are dropped; one a worker holds is refused while the first
        # run's lease is live, and acknowledged.
        _drop_messages(client, job["id"])
        wait_for(
            lambda: _held(client, job["id"]) == 1,
            timeout=30,
            what="the running delivery to be the job's only message",
        )
        (markers / f"{job['id']}.release").touch()
        wait_for(
            lambda: api.job(job["id"])["state"] == "retrying",
            timeout=30,
            what="the first run to record its retry",
        )
        dropped = wait_for(
            lambda: _drop_messages(client, job["id"]),
            timeout=10,
            interval=0.1,
            what="the retry's message in the broker, to drop it",
        )
        assert dropped == 1
    # A relay as every API and worker process runs, with a short grace so the test is short.
    fast = create_app(make_settings(base_settings, LEDGER_RESERVED_GRACE=2.0))
    outbox.ensure_relay(fast)
    try:
        done = api.wait(job["id"], timeout=60)
    finally:
        outbox.stop_relay(fast)

    assert (done["state"], done["attempts"]) == ("succeeded", 2), done
    assert [a["outcome"] for a in done["attempt_log"]] == ["retrying", "succeeded"]
    assert ran.read_text().count("\n") == 2
