"""The broker and worker-kill campaigns' moves: the mixed load, the queues' job logs read
back, and which process to kill (test_broker_and_worker_kills.py runs them).

The load alternates a prefork queue (dataset) and a gevent queue (generation); each queue's
jobs log their runs in a directory of their own, which is how a test finds what ran where.
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path
from typing import Any

from tests.integration.faults.evidence import attempts
from tests.support.processes import parent
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

QUEUES = {"dataset": "faults.attempt", "generation": "faults.io_attempt"}


def queue_dirs(root: Path) -> dict[str, Path]:
    dirs = {queue: root / queue for queue in QUEUES}
    for path in dirs.values():
        path.mkdir(exist_ok=True)
    return dirs


def mixed_load(dirs: dict[str, Path], duration: float) -> Any:
    bodies = itertools.cycle(
        [
            {"task": task, "args": {"marker_dir": str(dirs[queue]), "duration": duration}}
            for queue, task in QUEUES.items()
        ]
    )
    lock = threading.Lock()

    def body() -> dict[str, Any]:
        with lock:
            return dict(next(bodies))

    return body


def first_start_after(directory: Path, moment: float) -> float | None:
    """The earliest job start logged in `directory` after `moment`."""
    earliest: float | None = None
    for entry in os.scandir(directory):
        if entry.stat().st_mtime < moment:
            continue
        for run in attempts(directory, entry.name.removesuffix(".log")):
            if run.start > moment and (earliest is None or run.start < earliest):
                earliest = run.start
    return earliest


def workers_alive(workers: dict[str, WorkerProcess]) -> dict[str, bool]:
    return {name: w.process is not None and w.process.poll() is None for name, w in workers.items()}


def resumed(dirs: dict[str, Path], moment: float) -> dict[str, float] | None:
    starts = {queue: first_start_after(d, moment) for queue, d in dirs.items()}
    return {q: s for q, s in starts.items() if s is not None} if all(starts.values()) else None


def ids_in(ids: list[str], directory: Path) -> list[str]:
    """Accepted ids whose job logs live in `directory` (the load alternates queues)."""
    mine = {entry.name.removesuffix(".log") for entry in os.scandir(directory)}
    return [i for i in ids if i in mine] + [
        i for i in ids if i not in mine and never_ran(i, directory)
    ]


def never_ran(job_id: str, directory: Path) -> bool:
    # A job that never ran has no log anywhere: count it under the dataset queue only.
    return directory.name == "dataset" and not any(
        (sibling / f"{job_id}.log").exists() for sibling in directory.parent.iterdir()
    )


def sum_figures(audits: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for seen in audits:
        for key, value in seen.figures().items():
            total[key] = total.get(key, 0) + value
    return total


def queue_of(kind: str) -> str:
    return "generation" if kind == "gevent" else "dataset"


def submit_running(
    client: Any, auth: dict[str, str], task: str, directory: Path, duration: float
) -> tuple[str, int]:
    """A job of `task` submitted, once its body runs: its id and the pid running it."""
    response = client.post(
        "/api/v1/jobs",
        json={"task": task, "args": {"marker_dir": str(directory), "duration": duration}},
        headers=auth,
    )
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    run = wait_for(
        lambda: next((r for r in attempts(directory, job_id) if r.last_seen > r.start), None),
        timeout=60,
        what=f"job {job_id} ({task}) to be running",
    )
    return job_id, run.pid


def worker_running(workers: dict[str, WorkerProcess], kind: str, pid: int) -> WorkerProcess:
    """The worker whose main process is `pid` (gevent) or the parent of `pid` (prefork)."""
    main = pid if kind == "gevent" else parent(pid)
    host = next((w for w in workers.values() if w.process and w.process.pid == main), None)
    assert host is not None, f"no worker main process {main} runs the {kind} job (pid {pid})"
    if kind != "gevent":
        assert pid != main, "the prefork job runs in the main process"
    return host


def without_overlap(kinds: list[str]) -> list[list[str]]:
    """Kills grouped so that one group never kills two processes of the same worker."""
    groups: list[list[str]] = []
    for kind in kinds:
        last = groups[-1] if groups else None
        if last is not None and kind == "gevent" and last == ["main"]:
            last.append(kind)
        else:
            groups.append([kind])
    return groups
