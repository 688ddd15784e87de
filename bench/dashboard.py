"""Dashboard benchmark: p95 of every page with 100k jobs in the ledger (target <= 150 ms).

Run from the project root:

    uv run python bench/dashboard.py                 # 100k jobs, 30 rounds
    uv run python bench/dashboard.py --jobs 20000 --rounds 10

Fills a fresh database with `--jobs` ledger rows (a week of history, a fifth of it in the
last hour so the per-minute chart has work to do; 85% succeeded, 8% failed over 20 tasks x
5 error types, the rest queued, started, cancelled) plus 2,000 documents, mails and
generations each. One real `io` worker runs, so the overview's live panel asks a worker
that answers. Every page is requested once per round, interleaved with the reference
(`GET /api/v1/health`, the cheapest request the app serves), through Flask's test client in
this process, signed in as the dashboard is. Reported per page: median and p95 in ms, and
p95 as a multiple of the reference's p95 measured in the same rounds.

On PostgreSQL, every SQL statement a page runs against `jobs` is then EXPLAINed, and a
sequential scan of `jobs` is reported as a failure: the pages must walk indexes.

Services: as the test suite picks them (tests/support/services.py); all removed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `python bench/dashboard.py` puts bench/ on sys.path, not the project root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app.extensions.ext_database import db  # noqa: E402
from app.models import Job  # noqa: E402
from app.models.dataset import Dataset  # noqa: E402
from app.models.dataset import Document  # noqa: E402
from app.models.generation import Generation  # noqa: E402
from app.models.mail import Mail  # noqa: E402
from app.services import api_keys  # noqa: E402
from bench import support  # noqa: E402
from tests.support.workers import WorkerProcess  # noqa: E402

TARGET_P95_MS = 150.0
BATCH = 5000
TASKS = [f"bench.task_{i:02d}" for i in range(20)]
ERRORS = ["ValueError", "TimeoutError", "ConnectionError", "KeyError", "ProviderError"]
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def job_rows(count: int, now: datetime, rng: random.Random) -> Iterator[dict[str, Any]]:
    week = 7 * 24 * 3600
    for i in range(count):
        recent = i % 5 == 0
        created = now - timedelta(seconds=rng.uniform(0, 3600 if recent else week))
        roll = rng.random()
        state = (
            "succeeded"
            if roll < 0.85
            else "failed"
            if roll < 0.93
            else "cancelled"
            if roll < 0.96
            else "queued"
            if roll < 0.98
            else "started"
        )
        finished = created + timedelta(seconds=rng.uniform(0.05, 30))
        terminal = state in ("succeeded", "failed", "cancelled")
        failed = state == "failed"
        yield {
            "id": str(uuid.uuid4()),
            "task": rng.choice(TASKS),
            "queue": rng.choice(["dataset", "generation", "mail", "ops_trace"]),
            "state": state,
            "args": {"n": i},
            "attempts": 1 if state != "queued" else 0,
            "worker": "bench@host" if state != "queued" else None,
            "error_type": rng.choice(ERRORS) if failed else None,
            "error_message": f"bench failure {i}" if failed else None,
            "result": {"ok": True} if state == "succeeded" else None,
            "created_at": created,
            "started_at": created if state != "queued" else None,
            "finished_at": min(finished, now) if terminal else None,
            "updated_at": created,
        }


def fill(app: Flask, jobs: int, lanes: int) -> None:
    rng = random.Random(12)
    now = datetime.now(UTC)
    with app.app_context():
        started = time.monotonic()
        batch: list[dict[str, Any]] = []
        for done, row in enumerate(job_rows(jobs, now, rng), start=1):
            batch.append(row)
            if len(batch) == BATCH:
                db.session.execute(insert(Job), batch)
                db.session.commit()
                batch = []
                print(f"\r  jobs: {done}/{jobs}", end="", flush=True)
        if batch:
            db.session.execute(insert(Job), batch)
            db.session.commit()
        print(f"\r  jobs: {jobs}/{jobs} in {time.monotonic() - started:.0f} s")
        dataset = Dataset(name="bench")
        db.session.add(dataset)
        db.session.flush()
        for i in range(lanes):
            when = now - timedelta(seconds=i * 7)
            db.session.add(
                Document(
                    dataset_id=dataset.id,
                    name=f"doc-{i}.txt",
                    file_type="txt",
                    size=1000,
                    checksum=f"{i:064d}",
                    segment_count=10,
                    segments_done=i % 11,
                    created_at=when,
                )
            )
            db.session.add(
                Mail(
                    template="job_finished",
                    recipients=["ops@example.com"],
                    subject=f"mail {i}",
                    text_body="x",
                    html_body="x",
                    message_id=f"<{uuid.uuid4()}@bench>",
                    smtp_code=250,
                    smtp_response="2.0.0 Ok: queued",
                    created_at=when,
                )
            )
            db.session.add(
                Generation(
                    provider="offline",
                    model="extractive-summary",
                    messages=[],
                    status="succeeded",
                    text="lorem ipsum " * 40,
                    created_at=when,
                )
            )
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # What autovacuum does soon after a bulk load: statistics and the visibility
            # map (without it no index-only scan skips the heap).
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        print(f"  documents, mails, generations: {lanes} each")


def sign_in(app: Flask) -> FlaskClient:
    with app.app_context():
        _key, token = api_keys.create("bench")
    client = app.test_client()
    csrf = TOKEN.search(client.get("/dashboard/sign-in").get_data(as_text=True))
    assert csrf
    response = client.post("/dashboard/sign-in", data={"api_key": token, "csrf_token": csrf[1]})
    assert response.status_code == 302, response.status_code
    return client


def pages(app: Flask, client: FlaskClient) -> dict[str, str]:
    with app.app_context():
        row = db.session.execute(
            text("SELECT id FROM jobs WHERE state = 'failed' ORDER BY created_at LIMIT 1")
        ).one()
    jobs_html = client.get("/dashboard/jobs").get_data(as_text=True)
    cursor = re.search(r'rel="next" href="[^"]*cursor=([^"&]+)', jobs_html)
    assert cursor, "the jobs page has a next page"
    day_ago = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    two_days = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "overview": "/dashboard/",
        "overview live panel": "/dashboard/live",
        "throughput.json": "/dashboard/throughput.json",
        "jobs": "/dashboard/jobs",
        "jobs page 2 (cursor)": f"/dashboard/jobs?cursor={cursor[1]}",
        "jobs state=failed": "/dashboard/jobs?state=failed",
        "jobs queue+state": "/dashboard/jobs?queue=mail&state=cancelled",
        "jobs task": f"/dashboard/jobs?task={TASKS[3]}",
        "jobs time window": f"/dashboard/jobs?since={two_days}&until={day_ago}",
        "job": f"/dashboard/jobs/{row[0]}",
        "failures": "/dashboard/failures",
        "datasets": "/dashboard/datasets",
        "mail": "/dashboard/mail",
        "generations": "/dashboard/generations",
    }


def measure(client: FlaskClient, urls: dict[str, str], rounds: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in ["reference: /health", *urls]}
    for url in urls.values():  # warm caches, the worker list and the template cache
        assert client.get(url).status_code == 200, url
    for number in range(rounds):
        for name, url in [("reference: /health", "/api/v1/health"), *urls.items()]:
            started = time.perf_counter()
            response = client.get(url)
            timings[name].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        print(f"\r  round {number + 1}/{rounds}", end="", flush=True)
    print()
    return timings


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


@contextmanager
def captured_sql(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []
    with app.app_context():
        engine = db.engine

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if " jobs" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def full_scans(app: Flask, client: FlaskClient, urls: dict[str, str]) -> tuple[int, list[str]]:
    """How many statements on jobs the pages run, and those whose plan scans the table."""
    found = []
    explained = 0
    for name, url in urls.items():
        with captured_sql(app) as statements:
            assert client.get(url).status_code == 200, url
        with app.app_context(), db.engine.connect() as conn:
            for statement, params in statements:
                rows = conn.exec_driver_sql("EXPLAIN " + statement, params).all()
                plan = "\n".join(row[0] for row in rows)
                explained += 1
                if "Seq Scan on jobs" in plan:
                    found.append(f"{name}: {statement[:160]}...\n{plan}")
    return explained, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--lanes", type=int, default=2000, help="documents, mails, generations")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dashboard-")))
        found = support.start_services(stack, tmp)
        values = support.testing_values(found, INSPECT_TIMEOUT="1.0")
        app = support.testing_app(values)
        print(f"services: {found.describe()}")
        fill(app, args.jobs, args.lanes)
        env = support.child_env(values)
        worker = WorkerProcess.for_profile(
            "io", env=env, log_dir=tmp, WORKER_NAME=f"io-{os.getpid()}@tests"
        )
        stack.callback(worker.stop)
        print("starting one io worker for the live panel")
        worker.start(app.extensions["celery"])
        client = sign_in(app)
        urls = pages(app, client)
        timings = measure(client, urls, args.rounds)
        scans = full_scans(app, client, urls) if "postgresql" in found.database_url else None
    reference = p95(timings["reference: /health"])
    width = max(len(name) for name in timings)
    print(f"{'page':<{width}}  median ms  p95 ms  p95 / reference p95")
    worst = 0.0
    for name, values_ms in timings.items():
        page_p95 = p95(values_ms)
        if not name.startswith("reference"):
            worst = max(worst, page_p95)
        print(
            f"{name:<{width}}  {statistics.median(values_ms):9.1f}  {page_p95:6.1f}  "
            f"{page_p95 / reference:6.1f}x"
        )
    verdict = "meets" if worst <= TARGET_P95_MS else "misses"
    print(f"slowest page p95: {worst:.1f} ms ({verdict} the {TARGET_P95_MS:.0f} ms target)")
    if scans is None:
        print("query plans: not checked (SQLite); run against PostgreSQL to check them")
    elif scans[1]:
        print("FULL SCANS of jobs:\n" + "\n\n".join(scans[1]))
    else:
        print(f"query plans: none of the {scans[0]} statements the pages run scans jobs")
    print(f"cores available: {os.cpu_count()}, load average now: {os.getloadavg()[0]:.2f}")
    return 0 if worst <= TARGET_P95_MS and not (scans and scans[1]) else 1


if __name__ == "__main__":
    sys.exit(main())
