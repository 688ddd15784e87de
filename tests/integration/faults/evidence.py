"""What really happened to the fault tests' jobs: their bodies' logs against the ledger.

The ledger says what it recorded; the job's own log (fault_tasks.py) says what ran. A test
compares the two, so "0 run unrecorded" and "attempts recorded truthfully" are checked
against facts, not against the ledger's word alone.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import Job

TERMINAL = {"succeeded", "failed", "cancelled"}


def progress(message: str) -> None:
    """A progress line for long campaigns (shown live under `pytest -s` / bench/faults.py)."""
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def report(name: str, figures: dict[str, Any]) -> None:
    """Append a campaign's figures to TASKLANE_FAULT_REPORT (JSON lines) for bench/faults.py."""
    progress(f"{name}: {json.dumps(figures)}")
    path = os.environ.get("TASKLANE_FAULT_REPORT")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"campaign": name, **figures}) + "\n")


def env_count(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass
class Attempt:
    pid: int
    start: float
    last_seen: float
    ended: bool


def attempts(marker_dir: Path, job_id: str) -> list[Attempt]:
    """Every run of the job's body, in order of start, from its log."""
    path = marker_dir / f"{job_id}.log"
    if not path.exists():
        return []
    runs: list[Attempt] = []
    open_by_pid: dict[int, Attempt] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue  # a line cut short by a SIGKILL
        event, pid, at = parts[0], int(parts[1]), float(parts[2])
        if event == "start":
            run = Attempt(pid, at, at, False)
            runs.append(run)
            open_by_pid[pid] = run
        elif pid in open_by_pid:
            run = open_by_pid[pid]
            run.last_seen = max(run.last_seen, at)
            run.ended = run.ended or event == "end"
    return sorted(runs, key=lambda run: run.start)


def overlapping(runs: list[Attempt]) -> bool:
    """Did any attempt start while an earlier one still showed signs of life?"""
    return any(
        later.start < earlier.last_seen for i, earlier in enumerate(runs) for later in runs[i + 1 :]
    )


def started_after(marker_dir: Path, job_id: str, moment: float) -> Attempt | None:
    return next((run for run in attempts(marker_dir, job_id) if run.start > moment), None)


def ledger_states(app: Flask, ids: Iterable[str]) -> dict[str, str]:
    """The ledger's state of each job, in one query (a job missing from it is absent)."""
    wanted = list(ids)
    states: dict[str, str] = {}
    with app.app_context():
        for offset in range(0, len(wanted), 500):
            chunk = wanted[offset : offset + 500]
            rows = db.session.execute(select(Job.id, Job.state).where(Job.id.in_(chunk)))
            states.update({row.id: getattr(row.state, "value", row.state) for row in rows})
        db.session.remove()
    return states


def wait_settled(app: Flask, ids: list[str], timeout: float) -> dict[str, str]:
    """Wait (up to `timeout`) until every job is final; returns the last states seen."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    last_note = 0.0
    while True:
        try:
            states = ledger_states(app, ids)
        except Exception as exc:  # noqa: BLE001 - the database may still be coming back
            progress(f"ledger not readable yet ({type(exc).__name__}); retrying")
            states = {}
        pending = [i for i in ids if states.get(i) not in TERMINAL]
        if not pending or time.monotonic() > deadline:
            return states
        if time.monotonic() - last_note > 10:
            progress(f"waiting for {len(pending)} of {len(ids)} jobs to finish")
            last_note = time.monotonic()
        time.sleep(0.5)


def job_view(client: FlaskClient, auth: dict[str, str], job_id: str) -> dict[str, Any] | None:
    response = client.get(f"/api/v1/jobs/{job_id}", headers=auth)
    return dict(response.get_json()) if response.status_code == 200 else None


def recorded_attempts(job: dict[str, Any]) -> int:
    """How many attempts the ledger shows: its attempt log when it has one, else the count."""
    log = job.get("attempt_log")
    return len(log) if isinstance(log, list) else int(job.get("attempts") or 0)


@dataclass
class Audit:
    """Each accepted job, classified from the ledger and the job's own log."""

    lost: list[str]
    stuck: dict[str, str]
    failed: list[str]
    run_unrecorded: list[str]
    untruthful: list[str]
    overlapping: list[str]
    succeeded: int

    def figures(self) -> dict[str, Any]:
        return {
            "succeeded": self.succeeded,
            "lost": len(self.lost),
            "stuck": len(self.stuck),
            "failed": len(self.failed),
            "run_unrecorded": len(self.run_unrecorded),
            "attempts_untruthful": len(self.untruthful),
            "overlapping_attempts": len(self.overlapping),
        }


def audit(
    client: FlaskClient,
    auth: dict[str, str],
    marker_dir: Path,
    ids: list[str],
    states: dict[str, str],
) -> Audit:
    result = Audit([], {}, [], [], [], [], 0)
    for job_id in ids:
        runs = attempts(marker_dir, job_id)
        if overlapping(runs):
            result.overlapping.append(job_id)
        job = job_view(client, auth, job_id)
        state = states.get(job_id)
        if job is None or state is None:
            result.lost.append(job_id)
            continue
        if state not in TERMINAL:
            result.stuck[job_id] = state
            continue
        if state != "succeeded":
            result.failed.append(job_id)
        else:
            result.succeeded += 1
        recorded = recorded_attempts(job)
        if len(runs) > recorded:
            result.run_unrecorded.append(job_id)
            progress(f"job {job_id} ran {len(runs)} times, ledger shows {_attempt_summary(job)}")
        elif not _truthful(job, runs, recorded):
            result.untruthful.append(job_id)
    return result


def _attempt_summary(job: dict[str, Any]) -> str:
    log = job.get("attempt_log")
    if not isinstance(log, list):
        return f"attempts={job.get('attempts')}"
    outcomes = [(entry.get("number"), entry.get("outcome")) for entry in log]
    return f"attempts={job.get('attempts')} attempt_log={outcomes}"


def _truthful(job: dict[str, Any], runs: list[Attempt], recorded: int) -> bool:
    """The ledger's attempts match the runs: as many, and a success where the body finished.

    An attempt recorded without a run of the body (its process died between the ledger's
    start and the body's first line) is allowed only when it did not succeed.
    """
    log = job.get("attempt_log")
    if not isinstance(log, list):
        return recorded >= len(runs)
    succeeded = [entry for entry in log if entry.get("outcome") == "succeeded"]
    if job["state"] == "succeeded":
        return len(succeeded) == 1 and any(run.ended for run in runs) and recorded >= len(runs)
    return not succeeded and recorded >= len(runs)


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    ranked = sorted(values)
    return statistics.quantiles(ranked, n=100, method="inclusive")[int(share * 100) - 1]


def whereabouts(app: Flask, broker_url: str, ids: Iterable[str]) -> list[dict[str, Any]]:
    """For unfinished jobs: their ledger row and where their message is in the broker.

    What a failing campaign needs to tell a lost message (nowhere) from one waiting in a
    queue, held by a worker (kombu's `unacked` hash) or running under a lease.
    """
    import redis

    wanted = set(ids)
    if not wanted:
        return []
    client = redis.Redis.from_url(broker_url, socket_timeout=5)
    places: dict[str, list[str]] = {}

    def note(raw: bytes | str, place: str) -> None:
        try:
            job_id = str(json.loads(raw)["headers"]["id"])
        except (TypeError, ValueError, KeyError):
            try:
                job_id = str(json.loads(raw)[0]["headers"]["id"])
            except (TypeError, ValueError, KeyError, IndexError):
                return
        if job_id in wanted:
            places.setdefault(job_id, []).append(place)

    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        name = key.decode(errors="replace")
        if kind == b"list":
            for raw in client.lrange(key, 0, -1):
                note(raw, f"list:{name!r}")
        elif kind == b"hash" and name == "unacked":
            for raw in client.hvals(key):
                note(raw, "unacked")
    rows = []
    with app.app_context():
        found = db.session.scalars(select(Job).where(Job.id.in_(wanted)))
        for job in found:
            rows.append(
                {
                    "id": job.id,
                    "state": job.state.value,
                    "attempts": job.attempts,
                    "eta": str(job.eta),
                    "updated_at": str(job.updated_at),
                    "published_at": str(job.published_at),
                    "lease_owner": job.lease_owner,
                    "lease_expires_at": str(job.lease_expires_at),
                    "error": job.error_message,
                    "message": places.get(job.id, ["nowhere"]),
                }
            )
        db.session.rollback()
    return rows
