"""Who used the CPU while a benchmark drained: the worker, PostgreSQL, Redis, the machine.

Jobs/s moves with whatever else shares the machine; the worker's CPU milliseconds per job
move far less, so the benchmarks print both.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.processes import descendants

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_by_role(worker_pid: int, database: str) -> dict[str, float]:
    """CPU seconds used so far (/proc): the worker and its children, the PostgreSQL backends
    of `database`, Redis (all of it: it may be shared), this process and the whole machine."""
    totals = {"worker": 0.0, "postgres": 0.0, "redis": 0.0}
    ours = descendants(worker_pid) | {worker_pid}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
            if int(entry.name) in ours:
                totals["worker"] += cpu
            elif comm.startswith("redis-server"):
                totals["redis"] += cpu
            elif database and comm.startswith("postgres"):
                # A backend's title names its database: "postgres: USER DB HOST(PORT) STATE".
                if f" {database} ".encode() in (entry / "cmdline").read_bytes():
                    totals["postgres"] += cpu
        except (OSError, ValueError, IndexError):
            continue  # the process exited while being read
    own = os.times()
    totals["bench"] = own.user + own.system
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    totals["busy"] = (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK  # all but idle and iowait
    return totals


class CpuWindow:
    """Who used the CPU between the first sign of work and the end of a drain."""

    def __init__(self, worker_pid: int, database_url: str, jobs: int) -> None:
        url = make_url(database_url)
        self.database = (url.database or "") if url.get_backend_name() == "postgresql" else ""
        self.worker_pid, self.jobs = worker_pid, jobs
        self.start: dict[str, float] | None = None
        self.end: dict[str, float] = {}
        self.finished_before = 0
        self.t0 = self.t1 = 0.0

    def observe(self, finished: int, running: int = 0) -> None:
        if finished + running > 0 and self.start is None:
            self.start, self.t0 = cpu_by_role(self.worker_pid, self.database), time.monotonic()
            self.finished_before = finished

    def close(self) -> None:
        self.end, self.t1 = cpu_by_role(self.worker_pid, self.database), time.monotonic()

    def describe(self) -> str:
        if not self.start or not self.end:
            return "CPU: not measured"
        wall, cores = self.t1 - self.t0, os.cpu_count() or 1
        used = {k: max(0.0, self.end[k] - self.start[k]) for k in self.end}
        busy = used.pop("busy") / (wall * cores) * 100 if wall > 0 else 0.0
        if not self.database:
            used.pop("postgres")
        parts = ", ".join(f"{k} {v:.2f}s" for k, v in used.items())
        return (
            f"CPU over {wall:.2f}s of draining: {parts}; machine {busy:.0f}% busy ({cores} "
            f"cores); worker CPU {self.worker_ms_per_job():.2f} ms/job (less sensitive to load)"
        )

    def worker_ms_per_job(self) -> float | None:
        if not self.start or not self.end:
            return None
        used = max(0.0, self.end["worker"] - self.start["worker"])
        return used / max(1, self.jobs - self.finished_before) * 1e3
