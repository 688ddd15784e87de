"""Tasklane fault campaigns at the issue's full counts; prints the figures for the README.

Run from the project root (about 15 minutes on 2 cores):

    uv run python bench/faults.py                          # PG 3 x 20 s, Redis 10 + 10, 50 kills
    uv run python bench/faults.py --pg-rounds 1 --redis-rounds 2 --kills 6     # a shorter run
    uv run python bench/faults.py -k kills                 # one campaign (pytest -k expression)

It runs the fault tests (tests/integration/faults/) with the counts raised through their
environment variables, streams their progress lines, and prints one table at the end:
lost, stuck, run unrecorded, worker exits, resume time after Redis answers, and kill to next
attempt p50/p95/max. The same assertions as in the suite decide pass or fail; a failing
campaign still reports its figures. Set TASKLANE_TEST_PG_ADMIN as for the suite (the
Redis/kill campaigns use a fresh database there; PostgreSQL's runs on a private cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

ROWS = [
    ("postgres_outage", "accepted", "accepted jobs"),
    ("postgres_outage", "refused", "refused requests"),
    ("postgres_outage", "refusals_not_503_problem_retry_after", "refusals not 503+Retry-After"),
    ("postgres_outage", "lost", "lost"),
    ("postgres_outage", "stuck", "stuck"),
    ("postgres_outage", "failed", "failed"),
    ("postgres_outage", "run_unrecorded", "run unrecorded"),
    ("postgres_outage", "attempts_untruthful", "attempts untruthful"),
    ("postgres_outage", "orphaned_rows", "orphaned rows"),
    ("redis_restarts", "accepted", "accepted jobs"),
    ("redis_restarts", "worker_exits", "worker process exits"),
    ("redis_restarts", "left_started", "jobs left started"),
    ("redis_restarts", "lost", "lost"),
    ("redis_restarts", "stuck", "stuck"),
    ("redis_restarts", "run_unrecorded", "run unrecorded"),
    ("redis_restarts", "resume_s_p50", "resume after Redis answers p50 (s)"),
    ("redis_restarts", "resume_s_max", "resume after Redis answers max (s)"),
    ("worker_kills", "kills", "SIGKILLs"),
    ("worker_kills", "next_attempt_s_p50", "kill -> next attempt p50 (s)"),
    ("worker_kills", "next_attempt_s_p95", "kill -> next attempt p95 (s)"),
    ("worker_kills", "next_attempt_s_max", "kill -> next attempt max (s)"),
    ("worker_kills", "killed_jobs", "killed jobs (audit)"),
    ("worker_kills", "background_jobs", "background jobs (audit)"),
    ("worker_kills", "children_outliving_killed_main", "children outliving a killed main"),
]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pg-rounds", type=int, default=3, help="PostgreSQL outages (3)")
    parser.add_argument("--pg-outage", type=int, default=20, help="seconds each (20)")
    parser.add_argument("--redis-rounds", type=int, default=10, help="graceful + SIGKILL pairs")
    parser.add_argument("--kills", type=int, default=50, help="worker SIGKILLs (50)")
    parser.add_argument("-k", dest="select", default="", help="pytest -k expression")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tasklane-faults-") as tmp:
        report = Path(tmp) / "report.jsonl"
        env = {
            **os.environ,
            "TASKLANE_FAULT_PG_ROUNDS": str(args.pg_rounds),
            "TASKLANE_FAULT_PG_OUTAGE": str(args.pg_outage),
            "TASKLANE_FAULT_REDIS_ROUNDS": str(args.redis_rounds),
            "TASKLANE_FAULT_KILLS": str(args.kills),
            "TASKLANE_FAULT_REPORT": str(report),
        }
        command = [sys.executable, "-m", "pytest", "tests/integration/faults", "-s", "-q"]
        command += ["-p", "no:cacheprovider"] + (["-k", args.select] if args.select else [])
        print(f"running: {' '.join(command)}", flush=True)
        code = subprocess.call(command, cwd=ROOT, env=env)
        figures = _read(report)
    _print_table(figures)
    print(f"\npytest exit status {code} ({'all assertions held' if code == 0 else 'see above'})")
    return code


def _read(report: Path) -> dict[str, dict[str, Any]]:
    if not report.exists():
        return {}
    lines = report.read_text().splitlines()
    return {row["campaign"]: row for row in map(json.loads, lines)}


def _print_table(figures: dict[str, dict[str, Any]]) -> None:
    print("\nfault campaign figures (machine shared with other work; times are wall clock)")
    for campaign, key, label in ROWS:
        value = figures.get(campaign, {}).get(key, "not run")
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        print(f"  {campaign:16} {label:40} {value}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
