"""Processes of the tests: which exist (Linux /proc), and the private servers tests run.

`descendants` and `alive` are a test's proof that a command left nothing running;
`ServerProcess` is the start/stop/kill/close shared by tests/support/redis_control.py and
tests/support/pg_cluster.py.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.waiting import wait_for


def parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the parent pid follows its closing paren.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (a prefork worker's pool, say)."""
    return {child for child in _pids() if parent(child) == pid}


def descendants(root: int) -> set[int]:
    """Every live process below `root` (children, grandchildren, ...)."""
    by_parent: dict[int, list[int]] = {}
    for pid in _pids():
        parent_pid = parent(pid)
        if parent_pid is not None:
            by_parent.setdefault(parent_pid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def command_lines(pids: set[int]) -> dict[int, str]:
    """What each of `pids` runs, for a failure message (gone ones left out)."""
    lines = {}
    for pid in sorted(pids):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        lines[pid] = raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    return lines


def alive(pids: set[int]) -> set[int]:
    """The pids of `pids` still running (zombies count as gone)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def redis_servers_in(directory: Path) -> set[int]:
    """Live redis-server processes working in `directory` or below it.

    redis-server rewrites its command line once started, but it runs in its `--dir`, and
    every embedded server is launched with its data folder as `--dir`.
    """
    found = set()
    root = str(directory.resolve())
    for pid in _pids():
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if name.startswith("redis-server") and (cwd == root or cwd.startswith(root + "/")):
            found.add(pid)
    return alive(found)


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now (the server that takes it binds it soon after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PORT_ATTEMPTS = 3
# Every server started and not yet closed; atexit closes what a crashed test left running.
_LIVE: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


class ServerProcess:
    """A private server a fault test may stop, SIGKILL and start again (Redis, PostgreSQL).

    The one place for what they share: `with` opens and always closes it, one registry of
    live servers closed at exit, the start-up wait (the server answers, or it exited and its
    log says why), a stop that SIGKILLs when the signal is not obeyed in time, and the log.
    Subclasses say how to open (`_open`), start, probe (`answers`) and close it.
    """

    kind = "server"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path
    port: int

    def __init__(self) -> None:
        _LIVE.add(self)

    def __enter__(self) -> Self:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self) -> None:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        _LIVE.discard(self)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def first_start(self, start: Callable[[], object]) -> None:
        """`start()`, on another free port while the one picked was taken by then: another
        run's server may bind it between `free_port()` and our bind. Restarts keep the port."""
        for attempt in range(PORT_ATTEMPTS):
            seen = len(self.log())
            try:
                start()
                return
            except AssertionError:
                taken = "Address already in use" in self.log()[seen:]
                if not taken or attempt + 1 == PORT_ATTEMPTS:
                    raise
                self.port = free_port()

    def wait_answering(self, timeout: float, what: str, interval: float = 0.05) -> None:
        """Until the server answers (deadline stretched by load); an exit fails at once."""
        wait_for(self._answering_or_dead, timeout=timeout, interval=interval, what=what)

    def _answering_or_dead(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.kind} exited at start; log:\n{self.log()}")
        return self.answers()

    def signal_and_wait(self, sig: signal.Signals, timeout: float) -> bool:
        """Send `sig` and wait for the exit; False (and nothing more done) if it did not."""
        if not self.running():
            return True
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _close_all() -> None:
    for server in list(_LIVE):
        server.close()


atexit.register(_close_all)
