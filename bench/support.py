"""What the benchmarks share: services, the app, worker processes, progress, a drain.

Services, databases and processes come from the test suite's own support (tests/support):
a claimed Redis database index or an embedded redis-server, a fresh PostgreSQL database or a
temporary SQLite file (REDIS_URL / DATABASE_URL / TASKLANE_TEST_PG_ADMIN /
TASKLANE_TEST_EMBEDDED choose as they do for the tests), and `WorkerProcess` for every child.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions.ext_database import db
from config import ENV_NAMES
from config import Settings
from tests.support import services as test_services
from tests.support.workers import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
CANARY = "system.canary"
STALL_TIMEOUT = 30.0  # a drain or a submission run with no progress for this long fails
WORKER_START_TIMEOUT = 120.0  # start-up is imports: a busy 2-core machine is slow at it
POLL_INTERVAL = 0.2
IS_TTY = sys.stdout.isatty()


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says what failed and where to look."""


def say(message: str) -> None:
    print(message, flush=True)


def phase(message: str) -> None:
    say(f"==> {message}")


class Progress:
    """A counter line: rewritten in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.started = self.last_change = time.monotonic()
        self.last_print = 0.0
        self.done = 0
        self.printed: int | None = None

    def update(self, done: int) -> None:
        now = time.monotonic()
        if done != self.done:
            self.done, self.last_change = done, now
        if IS_TTY or now - self.last_print >= 3.0:
            self.last_print = now
            self._print(end="" if IS_TTY else "\n")

    def finish(self) -> None:
        if IS_TTY or self.printed != self.done:
            self._print(end="\n")

    def _print(self, end: str) -> None:
        self.printed = self.done
        line = (
            f"    {self.label}: {self.done}/{self.total} ({time.monotonic() - self.started:.1f}s)"
        )
        print(f"\r{line}\x1b[K" if IS_TTY else line, end=end, flush=True)

    def stuck(self) -> str | None:
        """Why the run is stuck (nothing started in time, or no progress since), else None."""
        now = time.monotonic()
        if self.done == 0 and now - self.started > WORKER_START_TIMEOUT:
            return f"nothing done within {WORKER_START_TIMEOUT:.0f}s"
        if self.done and now - self.last_change > STALL_TIMEOUT:
            return f"no progress for {STALL_TIMEOUT:.0f}s"
        return None


def poll(done: Callable[[], bool], progress: Progress, check: Callable[[], str]) -> None:
    """Until `done()`; BenchError naming `check()` (where to look) once the run is stuck."""
    while not done():
        reason = progress.stuck()
        if reason:
            raise BenchError(f"{progress.label}: {reason}; {check()}")
        time.sleep(POLL_INTERVAL)
    progress.finish()


@dataclass
class Services:
    redis_url: str
    database_url: str

    def describe(self) -> str:
        database = make_url(self.database_url).render_as_string(hide_password=True)
        return f"redis {self.redis_url}, database {database}"


def start_services(stack: contextlib.ExitStack, tmp: Path) -> Services:
    """The test suite's services, removed when `stack` closes."""
    redis_url = stack.enter_context(test_services.redis_server(tmp / "redis"))
    database_url = stack.enter_context(test_services.database(tmp / "db"))
    return Services(redis_url, database_url)


def tasklane_env(services: Services, **extra: str) -> dict[str, str]:
    """Environment of a Tasklane worker or API: production settings on the bench's services."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CELERY_", "WORKER_", "OTEL_")) and k != "TASKLANE_EXTRA_TASK_MODULES"
    }
    env.update(
        TASKLANE_ENV="production",
        SECRET_KEY="bench",
        DATABASE_URL=services.database_url,
        REDIS_URL=services.redis_url,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def build_app(services: Services) -> Flask:
    """The Tasklane app in this process, its schema migrated, configured like the workers."""
    values = {k: v for k, v in tasklane_env(services).items() if k in ENV_NAMES}
    # Quieter logs in the benchmark process only; workers and API keep production's INFO.
    settings = Settings(_env_file=None, **{**values, "LOG_LEVEL": "WARNING"})  # type: ignore[call-arg, arg-type]
    app = create_app(settings)
    with app.app_context():
        try:
            upgrade(revision="heads")
        except SystemExit as exc:  # Flask-Migrate logs the error, then exits
            raise BenchError(
                f"the schema migration failed (status {exc.code}), see above"
            ) from None
    return app


def dispose(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def flush_redis(app: Flask) -> None:
    app.extensions["redis"].flushdb()


def testing_values(services: Services, **extra: str) -> dict[str, str]:
    """Settings of a bench's in-process app (and of the children it starts): testing mode,
    the bench's services, no purge schedule; `extra` adds or overrides."""
    return {
        "TASKLANE_ENV": "testing",
        "REDIS_URL": services.redis_url,
        "DATABASE_URL": services.database_url,
        "PURGE_EXPIRED_JOBS_ENABLED": "false",
        **extra,
    }


def testing_app(values: dict[str, str]) -> Flask:
    """The app in this process with exactly `values` as settings, its schema migrated."""
    app = create_app(Settings(_env_file=None, **values))  # type: ignore[call-arg, arg-type]
    with app.app_context():
        upgrade(revision="heads")
    return app


def child_env(values: dict[str, str]) -> dict[str, str]:
    """A child's environment: this one without Celery/worker overrides, then `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "WORKER_"))}
    env.update(values)
    return env


def api_healthy(port: int) -> bool:
    """Whether an API on 127.0.0.1:`port` answers its health check with 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/api/v1/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def celery_worker(
    app_module: str,
    name: str,
    *,
    pool: str,
    concurrency: int,
    queues: str,
    env: dict[str, str],
    log_dir: Path,
    prefetch: int | None = None,
) -> WorkerProcess:
    """A `celery worker` started as entrypoint.sh starts production ones (not spawned yet);
    `prefetch` overrides the app's prefetch multiplier (both sides of a comparison alike)."""
    hostname = f"{name}-{secrets.token_hex(3)}@bench"
    command = [sys.executable, "-m", "celery", "-A", app_module, "worker", "-P", pool]
    command += ["-c", str(concurrency), "-Q", queues, "-n", hostname, "-l", "INFO"]
    if pool == "prefork":
        command += ["-O", "fair"]
    if prefetch is not None:
        command += ["--prefetch-multiplier", str(prefetch)]
    return WorkerProcess(hostname, command, env=env, log_dir=log_dir)


def tail(process: WorkerProcess, lines: int = 25) -> str:
    text = process.log().splitlines()[-lines:]
    return f"last lines of {process.log_path}:\n" + "\n".join("    " + line for line in text)


def run_in_tmp(prefix: str, keep_logs: bool, body: Callable[[Path], None]) -> int:
    """`body(tmp)` as a benchmark's whole run: its exit status, logs kept when it failed.

    A BenchError is printed, Ctrl-C and SIGTERM stop it cleanly (workers stopped, services
    removed by the body's own context managers).
    """

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    failed = True
    try:
        body(tmp)
        failed = False
    except BenchError as exc:
        say(f"\nerror: {exc}")
        return 1
    except KeyboardInterrupt:
        say("\ninterrupted; workers stopped and services cleaned up")
        return 130
    finally:
        if failed or keep_logs:
            say(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def services_and_app(stack: contextlib.ExitStack, tmp: Path) -> tuple[Services, Flask]:
    """The test suite's services and the migrated app on them, all closed with `stack`."""
    phase("services (the test suite's: tests/support/services.py)")
    services = start_services(stack, tmp)
    say(f"    {services.describe()}")
    phase('schema: flask_migrate.upgrade(revision="heads")')
    app = build_app(services)
    stack.callback(dispose, app)
    return services, app
