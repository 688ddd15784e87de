"""A private PostgreSQL cluster a fault test may stop, SIGKILL and start again.

`initdb` in a temporary directory owned by the `postgres` user, a postmaster run as that user
(we may be root; PostgreSQL refuses to run as root) on its own free port. The postmaster runs
in its own process group, so `kill()` takes every backend down with it, as a crashed host or a
killed container would, and cleanup never leaves a postgres process behind (context manager,
plus an atexit hook for a test run that dies).

    with PgCluster() as pg:          # initdb + start
        pg.url("tasklane")           # SQLAlchemy URL of a database (create it with create_db)
        pg.stop("fast")              # smart | fast | immediate, as pg_ctl -m
        pg.start()
        pg.kill()                    # SIGKILL postmaster and backends
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

import psycopg

from tests.support.processes import ServerProcess
from tests.support.processes import free_port
from tests.support.waiting import wait_for

BIN_DIR = Path(os.environ.get("TASKLANE_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
StopMode = Literal["smart", "fast", "immediate"]
# pg_ctl's shutdown modes are these signals to the postmaster.
STOP_SIGNALS: dict[str, signal.Signals] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


class ClusterUnavailable(RuntimeError):
    """This machine cannot run a private cluster (no binaries, no postgres user)."""


def unavailable_reason() -> str | None:
    """Why a private cluster cannot run here, or None when it can."""
    for binary in ("initdb", "postgres"):
        if not (BIN_DIR / binary).exists():
            return f"no {BIN_DIR / binary}; install postgresql-15 or set TASKLANE_PG_BIN"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the cluster as"
    return None


class PgCluster(ServerProcess):
    kind = "postgres"

    def __init__(self, port: int | None = None) -> None:
        reason = unavailable_reason()
        if reason:
            raise ClusterUnavailable(reason)
        super().__init__()
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # Directly under the temp dir: pytest's own temp dirs are root-only (0700).
        self.root = Path(tempfile.mkdtemp(prefix="tasklane-pg-"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self._user = self._run_as()

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        owner = pwd.getpwnam("postgres")
        os.chown(self.root, owner.pw_uid, owner.pw_gid)
        return "postgres"

    def _open(self) -> None:
        self.init()
        self.first_start(self.start)

    def init(self) -> None:
        subprocess.run(
            [
                str(BIN_DIR / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            user=self._user,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, timeout: float = START_TIMEOUT) -> PgCluster:
        if self.running():
            return self
        log = open(self.log_path, "ab")  # noqa: SIM115 - the postmaster owns it from here
        try:
            self.process = subprocess.Popen(
                [
                    str(BIN_DIR / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.root}",
                    "-c",
                    "max_connections=200",
                    # A killed process loses nothing the OS has; fsync guards only against
                    # a host crash, which these tests do not simulate.
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                ],
                user=self._user,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: kill() and cleanup reach every backend.
                start_new_session=True,
            )
        finally:
            log.close()
        self.wait_answering(
            timeout,
            f"private PostgreSQL on port {self.port} to accept connections (log: {self.log_path})",
            interval=0.1,
        )
        return self

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.dsn("postgres"), connect_timeout=1):
                return True
        except psycopg.Error:
            return False

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_db(self, name: str) -> str:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode: StopMode = "fast", timeout: float = STOP_TIMEOUT) -> None:
        """Shut down as `pg_ctl stop -m MODE` would; SIGKILL if it takes longer than timeout."""
        if not self.running():
            return
        if not self.signal_and_wait(STOP_SIGNALS[mode], timeout):
            self.kill()
        self._wait_group_gone()

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once (a host or container crash)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self._wait_group_gone()

    def _wait_group_gone(self) -> None:
        # A new postmaster refuses to start while old backends still hold the shared memory.
        assert self.process is not None
        pgid = self.process.pid

        def gone() -> bool:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return True
            return False

        if not gone():
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(gone, timeout=STOP_TIMEOUT, interval=0.05, what=f"postgres group {pgid} gone")

    def close(self) -> None:
        """Kill the cluster if it runs and remove its directory."""
        if self.process is not None:
            self.kill()
        super().close()
        shutil.rmtree(self.root, ignore_errors=True)
