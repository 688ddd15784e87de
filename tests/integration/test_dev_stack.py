"""`./entrypoint.sh dev` brings the whole stack up on embedded defaults, and Ctrl-C takes it
all down, as does killing it outright: no API, worker, beat or redis-server process is left.

How fast it answers is measured in the README (bench figures), not asserted here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app import embedded_redis
from tests.support.logged_process import http_status
from tests.support.processes import alive
from tests.support.processes import command_lines
from tests.support.processes import descendants
from tests.support.processes import redis_servers_in
from tests.support.services import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
INSTANCE = ROOT / "instance"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_dev_answers_and_stopping_it_leaves_no_process(tmp_path: Path, sig: int) -> None:
    if embedded_redis.attached_url(str(INSTANCE)):
        pytest.skip("a dev stack of this checkout is running; it owns the embedded Redis")
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "CELERY_", "WORKER_", "DATABASE_", "API_"))
    }
    env.update(API_PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'dev.db'}")
    health = f"http://127.0.0.1:{port}/api/v1/health"
    log_path = tmp_path / "dev.log"
    with open(log_path, "wb") as log:
        # Its own process group, as a terminal gives a foreground command.
        dev = subprocess.Popen(
            ["./entrypoint.sh", "dev"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            # A long probe timeout: it waits in the listen backlog while gunicorn boots.
            lambda: dev.poll() is None and http_status(health, timeout=5) == 200,
            timeout=120,
            interval=0.2,
            what=f"dev to answer /health (log: {log_path})",
        )
        wait_for(
            lambda: "started beat" in log_path.read_text(errors="replace"),
            timeout=60,
            what="dev to start the workers and beat",
        )
        stack = descendants(dev.pid)
        assert redis_servers_in(INSTANCE) & stack, "dev runs its own redis-server"
        assert len(stack) >= 5, stack  # redis, API (master + worker), two workers, beat

        # A process started on its own, without REDIS_URL, attaches to the stack's Redis.
        published = embedded_redis.attached_url(str(INSTANCE))
        assert published and published.startswith("unix://")
        alone = subprocess.run(
            [
                sys.executable,
                "-c",
                "import app.celery as c; print(c.flask_app.config['REDIS_URL'])",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert alone.stdout.strip() == published

        # Ctrl-C in its terminal sends SIGINT to the whole foreground group (the stack's Redis
        # once got it too, and went before the workers and beat it serves); SIGKILL leaves
        # dev no time to clean up, and its children still end (the kernel signals them).
        signalled_at = len(log_path.read_bytes())
        if sig == signal.SIGINT:
            os.killpg(dev.pid, sig)
        else:
            dev.send_signal(sig)
        expected = 0 if sig == signal.SIGINT else -signal.SIGKILL
        assert dev.wait(timeout=90) == expected, log_path.read_text(errors="replace")
        if sig == signal.SIGINT:
            # Each role stops on its own signal; none waits out the grace to be killed (beat
            # once took 10-40 s in its exit-time garbage collection).
            after = log_path.read_bytes()[signalled_at:].decode(errors="replace")
            assert "did not stop within" not in after
        try:
            wait_for(lambda: not alive(stack), timeout=60, what="every process of the stack to end")
        except AssertionError as exc:
            survivors = command_lines(alive(stack))
            raise AssertionError(f"{exc}; still running: {survivors}") from None
        assert not redis_servers_in(INSTANCE)
        # Killed, it could not remove its record; the dead pid in it keeps anyone attaching.
        assert embedded_redis.attached_url(str(INSTANCE)) is None
    finally:
        if dev.poll() is None:
            dev.send_signal(signal.SIGINT)
            try:
                dev.wait(timeout=60)
            except subprocess.TimeoutExpired:
                dev.kill()
                dev.wait()
