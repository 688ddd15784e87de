"""Redis restarts and SIGKILLed workers under load: no worker exits, no job lost or left started.

One private redis-server (AOF on, as production should run it) and the session's database;
a prefork worker (cpu profile) and a gevent worker (io profile), started as operators start
them. Campaign sizes: TASKLANE_FAULT_REDIS_ROUNDS (each one graceful stop and one SIGKILL of
Redis) and TASKLANE_FAULT_KILLS (SIGKILLs of prefork children, prefork main processes and
gevent workers, in turn).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.integration.faults.campaign import QUEUES
from tests.integration.faults.campaign import ids_in
from tests.integration.faults.campaign import mixed_load
from tests.integration.faults.campaign import queue_dirs
from tests.integration.faults.campaign import queue_of
from tests.integration.faults.campaign import resumed
from tests.integration.faults.campaign import submit_running
from tests.integration.faults.campaign import sum_figures
from tests.integration.faults.campaign import without_overlap
from tests.integration.faults.campaign import worker_running
from tests.integration.faults.campaign import workers_alive
from tests.integration.faults.conftest import START_TIMEOUT
from tests.integration.faults.conftest import auth_for
from tests.integration.faults.conftest import build_app
from tests.integration.faults.conftest import running
from tests.integration.faults.evidence import TERMINAL
from tests.integration.faults.evidence import audit
from tests.integration.faults.evidence import env_count
from tests.integration.faults.evidence import percentile
from tests.integration.faults.evidence import progress
from tests.integration.faults.evidence import report
from tests.integration.faults.evidence import started_after
from tests.integration.faults.evidence import wait_settled
from tests.integration.faults.evidence import whereabouts
from tests.support import services
from tests.support.load import LoadGenerator
from tests.support.processes import alive
from tests.support.processes import children
from tests.support.redis_control import RedisServer
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

REDIS_ROUNDS = env_count("TASKLANE_FAULT_REDIS_ROUNDS", 1)
REDIS_OUTAGE = float(env_count("TASKLANE_FAULT_REDIS_OUTAGE", 3))
KILLS = env_count("TASKLANE_FAULT_KILLS", 3)
RATE = float(env_count("TASKLANE_FAULT_RATE", 6))
SETTLE_TIMEOUT = float(env_count("TASKLANE_FAULT_SETTLE_TIMEOUT", 120))
# Long enough that a kill lands mid-task, short enough that a next attempt finishes soon.
KILLED_JOB_SECONDS = 6.0
RESUME_LIMIT = 10.0
NEXT_ATTEMPT_LIMIT = 30.0
# The suite's 300 s per test does not fit a full campaign, nor four workers starting on a busy
# machine: each test's limit grows with its campaign.
REDIS_TEST_LIMIT = 600 + REDIS_ROUNDS * 2 * 60
KILL_TEST_LIMIT = 600 + KILLS * 90


@pytest.fixture(scope="module")
def broker_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Not the session's: these workers' relays would publish the session workers' due jobs
    # to the private Redis, and lease recovery would claim rows other tests stage.
    with services.database(tmp_path_factory.mktemp("broker-db")) as url:
        yield url


@pytest.fixture(scope="module")
def broker_app(
    base_settings: dict[str, Any], private_redis: RedisServer, broker_database: str
) -> Flask:
    return build_app(base_settings, REDIS_URL=private_redis.url, DATABASE_URL=broker_database)


@pytest.fixture(scope="module")
def fault_workers(
    broker_app: Flask, worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, WorkerProcess]]:
    # Two workers per profile, as a deployment runs them: one may die while the other serves.
    cpu = {"profile": "cpu", "WORKER_CONCURRENCY": "1"}
    io = {"profile": "io", "WORKER_CONCURRENCY": "10"}
    profiles = {"cpu-a": cpu, "cpu-b": cpu, "io-a": io, "io-b": io}
    log_dir = tmp_path_factory.mktemp("fault-workers")
    with running(broker_app, worker_env, log_dir, profiles) as workers:
        yield workers


@pytest.mark.timeout(REDIS_TEST_LIMIT)
def test_redis_stopped_and_killed_under_load_keeps_workers_and_jobs(
    broker_app: Flask,
    fault_workers: dict[str, WorkerProcess],
    private_redis: RedisServer,
    tmp_path: Path,
) -> None:
    client = broker_app.test_client()
    auth = auth_for(broker_app)
    dirs = queue_dirs(tmp_path)
    resumes: list[float] = []
    worker_exits: list[str] = []
    slow: list[str] = []

    with LoadGenerator(client, auth, mixed_load(dirs, 0.3), rate=RATE) as load:
        for number, mode in enumerate(["graceful", "sigkill"] * REDIS_ROUNDS):
            load.wait_accepted(6, timeout=60, what="jobs accepted between Redis outages")
            (private_redis.stop if mode == "graceful" else private_redis.kill)()
            # The outage lasts this long by design.
            threading.Event().wait(REDIS_OUTAGE)
            private_redis.start()
            answered = time.time()
            starts = wait_for(
                lambda answered=answered: resumed(dirs, answered),  # type: ignore[misc]
                timeout=90,
                what="both queues to start jobs again after Redis answered",
            )
            resume = max(starts.values()) - answered
            resumes.append(resume)
            if resume > RESUME_LIMIT:
                slow.append(f"round {number + 1} ({mode}): {resume:.1f}s")
            dead = [name for name, alive in workers_alive(fault_workers).items() if not alive]
            worker_exits += [f"{name} after {mode} round {number + 1}" for name in dead]
            progress(
                f"redis round {number + 1}/{2 * REDIS_ROUNDS} {mode}: consumption resumed "
                f"{resume:.1f}s after Redis answered; workers exited: {dead or 'none'}"
            )
            for name in dead:  # keep the campaign going, as a supervisor would
                fault_workers[name].start(broker_app.extensions["celery"], START_TIMEOUT)
    result = load.result
    states = wait_settled(broker_app, result.accepted, SETTLE_TIMEOUT)
    found = {
        queue: audit(client, auth, d, ids_in(result.accepted, d), states)
        for queue, d in dirs.items()
    }
    left_started = [i for i in result.accepted if states.get(i) == "started"]
    unfinished = [i for i in result.accepted if states.get(i) not in TERMINAL]
    for row in whereabouts(broker_app, private_redis.url, unfinished[:20]):
        progress(f"unfinished: {json.dumps(row)}")
    bad_refusals = [r for r in result.refused if r.status != 503 or not r.retry_after]
    report(
        "redis_restarts",
        {
            "graceful": REDIS_ROUNDS,
            "sigkill": REDIS_ROUNDS,
            "accepted": len(result.accepted),
            "refused": len(result.refused),
            "worker_exits": len(worker_exits),
            "left_started": len(left_started),
            "unfinished_by_state": dict(
                Counter(
                    states.get(i, "missing")
                    for i in result.accepted
                    if states.get(i) not in TERMINAL
                )
            ),
            "resume_s_max": round(max(resumes), 2),
            "resume_s_p50": round(percentile(resumes, 0.5) or 0, 2),
            **sum_figures(found.values()),
        },
    )

    assert not worker_exits, f"worker processes exited: {worker_exits}"
    assert not left_started, f"jobs left started: {left_started[:5]}"
    assert not slow, f"consumption resumed more than {RESUME_LIMIT:.0f}s after Redis: {slow}"
    for queue, seen in found.items():
        assert not seen.lost and not seen.stuck, f"{queue}: lost {seen.lost[:3]} stuck {seen.stuck}"
        assert not seen.failed, f"{queue}: failed {seen.failed[:3]}"
        assert not seen.run_unrecorded, f"{queue}: ran unrecorded {seen.run_unrecorded[:3]}"
        assert not seen.overlapping, f"{queue}: two attempts at once {seen.overlapping[:3]}"
    assert not bad_refusals, f"refusals other than 503 with Retry-After: {bad_refusals[:3]}"


@pytest.mark.timeout(KILL_TEST_LIMIT)
def test_sigkilled_workers_mid_task_lose_nothing_and_come_back_within_30s(
    broker_app: Flask,
    fault_workers: dict[str, WorkerProcess],
    tmp_path: Path,
) -> None:
    client = broker_app.test_client()
    auth = auth_for(broker_app)
    celery_app = broker_app.extensions["celery"]
    dirs = queue_dirs(tmp_path)
    kinds = list(itertools.islice(itertools.cycle(["child", "main", "gevent"]), KILLS))
    delays: list[float] = []
    killed: list[tuple[str, str]] = []
    orphans: set[int] = set()
    # Background jobs on both queues, so recovered attempts compete with a real backlog.
    with LoadGenerator(client, auth, mixed_load(dirs, 0.2), rate=RATE / 2) as load:
        # A child alone (its main survives); a prefork main and a gevent worker at once. Each
        # queue has a second worker, as a deployment has: the next attempt need not wait for
        # the killed process to be started again (which it is, as a supervisor would).
        for group in without_overlap(kinds):
            victims = []
            for kind in group:
                queue = queue_of(kind)
                job_id, pid = submit_running(
                    client, auth, QUEUES[queue], dirs[queue], KILLED_JOB_SECONDS
                )
                host = worker_running(fault_workers, kind, pid)
                assert host.process is not None
                victim = pid if kind == "child" else host.process.pid
                if kind == "main":
                    orphans |= children(victim)
                victims.append((kind, job_id, queue, victim, host))
            kill_at = time.time()
            for _kind, _job, _queue, victim, _host_worker in victims:
                os.kill(victim, signal.SIGKILL)
            restarted = []
            for kind, _job, _queue, _victim, host in victims:
                if kind != "child":
                    assert host.process is not None
                    host.process.wait()
                    restarted.append(host.spawn())
            for kind, job_id, queue, _victim, _host_worker in victims:
                nxt = wait_for(
                    partial(started_after, dirs[queue], job_id, kill_at),
                    timeout=120,
                    what=f"the next attempt of job {job_id} after a {kind} kill",
                )
                delays.append(nxt.start - kill_at)
                killed.append((kind, job_id))
                progress(
                    f"kill {len(delays)}/{KILLS} ({kind}): next attempt after {delays[-1]:.1f}s"
                )
            for worker in restarted:
                worker.wait_ready(celery_app, timeout=START_TIMEOUT)
    result = load.result
    ids = result.accepted + [job_id for _kind, job_id in killed]
    states = wait_settled(broker_app, ids, SETTLE_TIMEOUT)
    killed_audit = {
        kind: audit(client, auth, dirs[queue_of(kind)], [j for k, j in killed if k == kind], states)
        for kind in set(kinds)
    }
    background = sum_figures(
        audit(client, auth, d, ids_in(result.accepted, d), states) for d in dirs.values()
    )
    outliving = alive(orphans)
    for pid in outliving:  # no process outlives the test, whatever it found
        os.kill(pid, signal.SIGKILL)
    report(
        "worker_kills",
        {
            "kills": len(delays),
            "by_kind": {kind: kinds.count(kind) for kind in set(kinds)},
            "next_attempt_s_p50": round(percentile(delays, 0.5) or 0, 2),
            "next_attempt_s_p95": round(percentile(delays, 0.95) or 0, 2),
            "next_attempt_s_max": round(max(delays), 2),
            "killed_jobs": sum_figures(killed_audit.values()),
            "background_jobs": background,
            "children_outliving_killed_main": len(outliving),
        },
    )

    for kind, seen in killed_audit.items():
        assert not seen.lost and not seen.stuck, f"{kind}: lost {seen.lost} stuck {seen.stuck}"
        assert not seen.failed, f"{kind} kill: jobs failed {seen.failed}"
        assert not seen.overlapping, f"{kind} kill: two attempts ran at once: {seen.overlapping}"
        assert not seen.run_unrecorded, f"{kind} kill: ran unrecorded {seen.run_unrecorded}"
    assert background["lost"] == 0 and background["stuck"] == 0, background
    assert background["overlapping_attempts"] == 0, background
    assert (percentile(delays, 0.95) or 0) <= NEXT_ATTEMPT_LIMIT, f"kill to next attempt: {delays}"
