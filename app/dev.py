"""`./entrypoint.sh dev`: the whole stack in one terminal on embedded defaults.

Starts the embedded Redis as its own child (unless REDIS_URL is set) and publishes its URL
in the instance folder, applies migrations, prints a fresh API key, then runs the API, one
worker per profile and beat, each through `entrypoint.sh`, with every log line prefixed by
its role. Ctrl-C (or SIGTERM) stops them all, in order, and the embedded Redis last.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import IO

from flask import Flask
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
            # Killed outright, the supervisor cannot stop its children: the kernel does.
            preexec_fn=embedded_redis.die_with_parent if sys.platform == "linux" else None,
        )
        _say(f"started {child.role} (pid {child.process.pid})")


def _emit(child: Child, data: bytes) -> None:
    child.buffer += data
    *lines, child.buffer = child.buffer.split(b"\n")
    for line in lines:
        text = line.decode(errors="replace")
        print(f"\033[{child.colour}m{child.role:<10} |\033[0m {text}", flush=True)


def _pump(
    children: list[Child], stop: list[bool], until: Callable[[], bool] | None = None
) -> str | None:
    """Relay output until a stop is requested, `until()` holds or a child exits (its role)."""
    selector = selectors.DefaultSelector()
    for child in children:
        assert child.process is not None and child.process.stdout is not None
        os.set_blocking(child.process.stdout.fileno(), False)
        selector.register(child.process.stdout, selectors.EVENT_READ, child)
    try:
        while not stop[0]:
            for key, _ in selector.select(timeout=0.1 if until else 0.5):
                child = key.data
                stream: IO[bytes] = key.fileobj  # type: ignore[assignment]
                data = stream.read(65536) or b""
                if data:
                    _emit(child, data)
            for child in children:
                assert child.process is not None
                if child.process.poll() is not None:
                    return child.role
            if until is not None and until():
                return None
    finally:
        selector.close()
    return None


def _answers(url: str) -> bool:
    try:
        # Long enough to wait in the listen backlog while the gunicorn worker is still booting,
        # rather than piling up probes that it would all answer at once.
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


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


def _start_redis(instance_path: str) -> embedded_redis.Server | None:
    if os.environ.get("REDIS_URL"):
        return None
    server = embedded_redis.launch(Path(instance_path) / "redis", persist=True)
    # Every process below gets the URL; one started by hand in another terminal finds it here.
    embedded_redis.publish(instance_path, server.url)
    os.environ["REDIS_URL"] = server.url
    _say(f"embedded Redis on {server.url} (pid {server.process.pid})")
    return server


def main() -> int:
    port = int(os.environ.get("API_PORT", "5001"))
    # The instance folder of the app package, known before the app (and its Redis) exist.
    instance_path = Flask("app").instance_path
    server = _start_redis(instance_path)
    try:
        return _run(port)
    finally:
        if server is not None:
            embedded_redis.unpublish(instance_path)
            server.stop()
            _say("embedded Redis stopped (its data is kept in instance/redis/)")


def _run(port: int) -> int:
    app = create_app()
    with app.app_context():
        _say(f"database {app.config['SQLALCHEMY_DATABASE_URI']}: applying migrations")
        upgrade()
        _key, token = api_keys.create("dev")
    # The API child must not run the upgrade again: that is a second full start of the app
    # before gunicorn even binds.
    env = dict(
        os.environ,
        API_BIND=f"127.0.0.1:{port}",
        API_WORKERS="1",
        MIGRATION_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
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
    base = f"http://127.0.0.1:{port}/api/v1"
    # The API first, the workers and beat once it answers: four processes importing the app
    # at once on a small machine would each take several times as long, and the API is what
    # a developer waits for. Jobs submitted meanwhile wait in their queues.
    api, rest = children[0], children[1:]
    _start([api], env)
    exited = _pump([api], stop, until=lambda: _answers(f"{base}/health"))
    if not exited and not stop[0]:
        _say(f"API answers on {base} (docs: {base}/docs)")
        _say("a dev API key for this run:")
        _say(f"  export TASKLANE_KEY={token}")
        _say(
            f'  curl -s -X POST {base}/jobs -H "Authorization: Bearer $TASKLANE_KEY" '
            "-H 'Content-Type: application/json' "
            '-d \'{"task": "system.canary", "args": {"token": "hi"}}\''
        )
        _say(f"dashboard on http://127.0.0.1:{port}/dashboard/ (sign in with the key above)")
        _say("starting the workers and beat; Ctrl-C stops everything")
        _start(rest, env)
        exited = _pump(children, stop)
    if exited:
        _say(f"{exited} exited unexpectedly; stopping the rest (its log is above)")
    _stop(children)
    return 1 if exited else 0


if __name__ == "__main__":
    sys.exit(main())
