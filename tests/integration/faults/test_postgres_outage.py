"""PostgreSQL stopped under steady submission: nothing accepted is lost, nothing runs unrecorded.

The app, its API and its workers use a private cluster as DATABASE_URL. Jobs are submitted at
a steady rate while the cluster is stopped (fast shutdown, then immediate, then SIGKILL, in
turn; TASKLANE_FAULT_PG_MODES) for TASKLANE_FAULT_PG_OUTAGE seconds, TASKLANE_FAULT_PG_ROUNDS times.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import Job
from tests.integration.faults.conftest import auth_for
from tests.integration.faults.conftest import build_app
from tests.integration.faults.conftest import running
from tests.integration.faults.evidence import audit
from tests.integration.faults.evidence import env_count
from tests.integration.faults.evidence import progress
from tests.integration.faults.evidence import report
from tests.integration.faults.evidence import wait_settled
from tests.support.load import LoadGenerator
from tests.support.pg_cluster import PgCluster
from tests.support.redis_control import RedisServer
from tests.support.workers import WorkerProcess

ROUNDS = env_count("TASKLANE_FAULT_PG_ROUNDS", 1)
OUTAGE = float(env_count("TASKLANE_FAULT_PG_OUTAGE", 20))
RATE = float(env_count("TASKLANE_FAULT_PG_RATE", 10))
SETTLE_TIMEOUT = float(env_count("TASKLANE_FAULT_SETTLE_TIMEOUT", 120))
# How the server goes down, round after round: "fast" is `pg_ctl stop`; "immediate" and "kill"
# are crashes (PostgreSQL loses commits not yet on disk: the ledger's start is asynchronous).
MODES = os.environ.get("TASKLANE_FAULT_PG_MODES", "fast,immediate,kill").split(",")
# Above the suite's 300 s per test: a full campaign, and workers starting on a busy machine.
TEST_LIMIT = 600 + ROUNDS * (OUTAGE + 60)


@pytest.fixture(scope="module")
def pg_app(
    base_settings: dict[str, Any], private_pg: PgCluster, private_redis: RedisServer
) -> Flask:
    url = private_pg.create_db("tasklane")
    return build_app(base_settings, DATABASE_URL=url, REDIS_URL=private_redis.url)


@pytest.fixture(scope="module")
def pg_workers(
    pg_app: Flask, worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, WorkerProcess]]:
    log_dir = tmp_path_factory.mktemp("pg-workers")
    with running(pg_app, worker_env, log_dir, {"cpu": {}}) as workers:
        yield workers


def _outage(cluster: PgCluster, mode: str, seconds: float) -> None:
    if mode == "kill":
        cluster.kill()
    else:
        cluster.stop(mode)  # type: ignore[arg-type]
    # The fault lasts this long by design: hold it, then bring the server back.
    threading.Event().wait(seconds)
    cluster.start()


@pytest.mark.timeout(TEST_LIMIT)
@pytest.mark.usefixtures("pg_workers")  # they run the jobs; the test only asks the ledger
def test_postgres_outage_under_load_loses_nothing_and_refuses_with_503(
    pg_app: Flask, private_pg: PgCluster, tmp_path: Path
) -> None:
    client = pg_app.test_client()
    auth = auth_for(pg_app)
    body = {"task": "faults.attempt", "args": {"marker_dir": str(tmp_path), "duration": 0.05}}

    with LoadGenerator(client, auth, lambda: body, rate=RATE) as load:
        for number in range(ROUNDS):
            mode = MODES[number % len(MODES)]
            load.wait_accepted(
                RATE * 2, timeout=60, what="submissions to be accepted before the outage"
            )
            progress(f"postgres round {number + 1}/{ROUNDS}: {mode} stop for {OUTAGE:.0f}s")
            _outage(private_pg, mode, OUTAGE)
            progress(f"postgres back; accepted/refused so far {load.counts()}")
        load.wait_accepted(
            RATE * 3, timeout=90, what="submissions to be accepted again after the outage"
        )
    result = load.result
    states = wait_settled(pg_app, result.accepted, SETTLE_TIMEOUT)
    found = audit(client, auth, tmp_path, result.accepted, states)
    orphans = _orphans(pg_app, tmp_path, set(result.accepted))
    bad_refusals = [
        refusal
        for refusal in result.refused
        if refusal.status != 503
        or refusal.content_type != "application/problem+json"
        or not refusal.retry_after
    ]
    report(
        "postgres_outage",
        {
            "rounds": ROUNDS,
            "outage_s": OUTAGE,
            "accepted": len(result.accepted),
            "refused": len(result.refused),
            "refusals_not_503_problem_retry_after": len(bad_refusals),
            "refusal_kinds": dict(Counter(str(r.status or r.error) for r in result.refused)),
            "orphaned_rows": len(orphans),
            **found.figures(),
        },
    )

    assert not found.lost, f"accepted jobs missing from the ledger: {found.lost[:5]}"
    assert not found.stuck, f"jobs not finished: {dict(list(found.stuck.items())[:5])}"
    assert not found.failed, f"jobs failed: {found.failed[:5]}"
    assert not found.run_unrecorded, (
        f"bodies ran more often than recorded: {found.run_unrecorded[:5]}"
    )
    assert not found.untruthful, f"attempts recorded untruthfully: {found.untruthful[:5]}"
    assert not bad_refusals, (
        f"refusals that are not 503 problem+json with Retry-After: {bad_refusals[:3]}"
    )
    assert not orphans, f"rows no client was told about: {sorted(orphans)[:5]}"


def _orphans(app: Flask, marker_dir: Path, accepted: set[str]) -> set[str]:
    """This test's job rows that no 202 ever named (a refused request left them behind)."""
    with app.app_context():
        rows = db.session.execute(select(Job.id, Job.args).where(Job.task == "faults.attempt"))
        ours = {row.id for row in rows if (row.args or {}).get("marker_dir") == str(marker_dir)}
        db.session.remove()
    return ours - accepted
