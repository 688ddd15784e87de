"""`./entrypoint.sh dev`: the whole stack in one terminal on embedded defaults.

Starts the embedded Redis (unless REDIS_URL is set), applies migrations, prints a fresh API
key, then runs the API, one worker per profile and beat, each through `entrypoint.sh`, with
every log line prefixed by its role. Ctrl-C (or SIGTERM) stops them all, in order, and the
embedded Redis with them.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from dataclasses import field
from typing import IO

from flask_migrate import upgrade

from app import create_app
from app import embedded_redis
from app import queues
from app.services import api_keys

STOP_GRACE_SECONDS = 30.0
COLOURS = ("36", "32", "33", "35", "34", "31")


@dataclass
class Child:
    role: str
    command: list[str]
    colour: str
    process: subprocess.Popen[bytes] | None = field(default=None)
    buffer: bytes = b""


def _say(message: str) -> None:
    print(f"\033[1mdev        |\033[0m {message}", flush=True)


def _roles(port: int) -> list[tuple[str, list[str]]]:
    roles = [("api", ["./entrypoint.sh", "api"])]
    roles += [(f"worker-{name}", ["./entrypoint.sh", "worker", name]) for name in queues.PROFILES]
    roles.append(("beat", ["./entrypoint.sh", "beat"]))
    return roles


def _start(children: list[Child], env: dict[str, str]) -> None:
    for child in children:
        # A session of its own: Ctrl-C reaches only this supervisor, which stops children in order.
        child.process = subprocess.Popen(
            child.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        _say(f"started {child.role} (pid {child.process.pid})")


def _emit(child: Child, data: bytes) -> None:
    child.buffer += data
    *lines, child.buffer = child.buffer.split(b"\n")
    for line in lines:
        text = line.decode(errors="replace")
        print(f"\033[{child.colour}m{child.role:<10} |\033[0m {text}", flush=True)


def _pump(children: list[Child], stop: list[bool]) -> str | None:
    """Relay output until a stop is requested or a child exits; returns the exited role."""
    selector = selectors.DefaultSelector()
    for child in children:
        assert child.process is not None and child.process.stdout is not None
        os.set_blocking(child.process.stdout.fileno(), False)
        selector.register(child.process.stdout, selectors.EVENT_READ, child)
    while not stop[0]:
        for key, _ in selector.select(timeout=0.5):
            child = key.data
            stream: IO[bytes] = key.fileobj  # type: ignore[assignment]
            data = stream.read(65536) or b""
            if data:
                _emit(child, data)
        for child in children:
            assert child.process is not None
            if child.process.poll() is not None:
                return child.role
    return None


def _stop(children: list[Child]) -> None:
    for child in reversed(children):
        if child.process and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        if child.process is None:
            continue
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            _say(f"{child.role} did not stop within {STOP_GRACE_SECONDS:.0f}s; killing it")
            child.process.kill()
            child.process.wait()
        if child.process.stdout is not None:
            rest = child.process.stdout.read() or b""
            _emit(child, rest + b"\n" if rest else b"")
        _say(f"{child.role} stopped (exit {child.process.returncode})")


def main() -> int:
    port = int(os.environ.get("API_PORT", "5001"))
    app = create_app()
    settings = app.config["SETTINGS"]
    started_redis = False
    if not settings.REDIS_URL:
        sock = embedded_redis.socket_path(app.instance_path)
        started_redis = not os.path.exists(sock)
        _say(f"embedded Redis on unix://{embedded_redis.ensure_running(app.instance_path)}")
    with app.app_context():
        _say(f"database {app.config['SQLALCHEMY_DATABASE_URI']}: applying migrations")
        upgrade()
        _key, token = api_keys.create("dev")
    env = dict(os.environ, API_BIND=f"127.0.0.1:{port}", API_WORKERS="1", PYTHONUNBUFFERED="1")
    children = [
        Child(role, command, COLOURS[i % len(COLOURS)])
        for i, (role, command) in enumerate(_roles(port))
    ]
    stop = [False]

    def request_stop(signum: int, _frame: object) -> None:
        if not stop[0]:
            _say(f"{signal.Signals(signum).name}: stopping every process")
        stop[0] = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    _start(children, env)
    base = f"http://127.0.0.1:{port}/api/v1"
    _say(f"API on {base} (docs: {base}/docs); a dev API key for this run:")
    _say(f"  export TASKLANE_KEY={token}")
    _say(
        f'  curl -s -X POST {base}/jobs -H "Authorization: Bearer $TASKLANE_KEY" '
        "-H 'Content-Type: application/json' "
        '-d \'{"task": "system.canary", "args": {"token": "hi"}}\''
    )
    _say("Ctrl-C stops everything")
    exited = _pump(children, stop)
    if exited:
        _say(f"{exited} exited unexpectedly; stopping the rest (its log is above)")
    _stop(children)
    if started_redis:
        embedded_redis.stop(app.instance_path)
        _say("embedded Redis stopped")
    return 1 if exited else 0


if __name__ == "__main__":
    sys.exit(main())
