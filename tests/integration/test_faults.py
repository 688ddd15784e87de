"""Faults lose nothing: a killed worker's job runs again as its next attempt within 30 s, a
job committed by an API process killed before publishing is published by the relay, and a
broker outage at submit refuses no work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.extensions.ext_database import db
from app.models import Job
from tests.conftest import make_settings
from tests.support.api import Api
from tests.support.waiting import wait_for
from tests.support.workers import ROOT
from tests.support.workers import WorkerProcess
from tests.support.workers import sole_consumer

# From the kill to the next attempt's start (issue 10); the lease TTL is 15 s by default.
# The 30 s (kill to next attempt, p95) is measured by bench/faults.py with a peer
# worker per profile: p95 15.2 s. Here a queue has one worker, which must restart first after
# a kill of the whole process; on a loaded machine that restart alone took up to 62 s.
NEXT_ATTEMPT_DEADLINE = 90.0


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
    victim = WorkerProcess.celery(
        "gevent-victim",
        pool="gevent",
        concurrency=5,
        queues=["generation"],
        env=worker_env,
        log_dir=session_tmp,
    )
    with sole_consumer(app.extensions["celery"], "generation", victim) as paused:
        yield victim, paused


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
    # The session's io worker takes the queue back, to run the next attempt.
    app.extensions["celery"].control.add_consumer(
        "generation", destination=paused, reply=True, timeout=1.0
    )

    done = _kill_mid_task_and_wait(api, job["id"], pid, markers)
    victim.process.wait()

    _assert_attempts_truthful(done, pid, markers)


def test_api_killed_between_commit_and_publish_is_published_by_the_relay(
    app: Flask, api: Api, api_token: str, worker_env: dict[str, str], markers: Path
) -> None:
    key = f"killed-api-{os.getpid()}-{time.monotonic_ns()}"
    body = {"task": "tests.record", "args": {"marker_dir": str(markers)}, "idempotency_key": key}
    script = (
        "import json, sys\n"
        "from app import create_app\n"
        "client = create_app().test_client()\n"
        "client.post('/api/v1/jobs', json=json.loads(sys.argv[1]),"
        " headers={'Authorization': 'Bearer ' + sys.argv[2]})\n"
    )
    env = {**worker_env, "LEDGER_FAULT_AFTER_COMMIT": "kill"}
    api_process = subprocess.run(
        [sys.executable, "-c", script, json.dumps(body), api_token],
        cwd=ROOT,
        env=env,
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
    # Nothing listens on port 1: this API process cannot reach the broker; the workers'
    # relays (which can) publish what it accepted.
    down = create_app(
        make_settings(
            base_settings,
            CELERY_BROKER_URL="redis://127.0.0.1:1/0",
            SUBMIT_BROKER_TIMEOUT=0.5,
            LEDGER_RELAY_IN_API=False,
        )
    )
    body = {"task": "tests.record", "args": {"marker_dir": str(markers)}}

    response = down.test_client().post("/api/v1/jobs", json=body, headers=api.auth)

    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert job["state"] == "queued"
    done = api.wait(job["id"], timeout=30)
    assert (done["state"], done["attempts"]) == ("succeeded", 1)
    assert (markers / f"{job['id']}.ran").read_text().count("\n") == 1
