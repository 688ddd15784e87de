"""The embedded Redis is launched only by dev, tests and benches, and never outlives them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app import embedded_redis
from app.extensions.ext_redis import broker_url
from tests.support.processes import redis_servers_in
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
INSTANCE = ROOT / "instance"


def test_a_launched_server_answers_keeps_its_data_and_stops(tmp_path: Path) -> None:
    server = embedded_redis.launch(tmp_path / "redis", persist=True)
    try:
        assert server.url.startswith("unix://")
        assert redis_servers_in(tmp_path) == {server.process.pid}
        assert len(embedded_redis.socket_path(tmp_path / "redis")) < 100  # unix socket limit
        with pytest.raises(embedded_redis.EmbeddedRedisError, match="already serves"):
            embedded_redis.launch(tmp_path / "redis")
    finally:
        server.stop()
    assert not embedded_redis.ping(server.url)
    assert not redis_servers_in(tmp_path)


def test_a_server_dies_with_the_process_that_launched_it(tmp_path: Path) -> None:
    # The owner is killed outright (no cleanup runs): the kernel still stops its server.
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from app import embedded_redis; "
            "print(embedded_redis.launch(Path(sys.argv[1])).url, flush=True); time.sleep(600)",
            str(tmp_path / "redis"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    url = owner.stdout.readline().strip()
    assert embedded_redis.ping(url)
    assert redis_servers_in(tmp_path)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    owner.stdout.close()
    wait_for(lambda: not redis_servers_in(tmp_path), timeout=15, what="no server")


def test_a_process_attaches_to_the_published_dev_stack_only_while_it_runs(tmp_path: Path) -> None:
    instance = str(tmp_path / "instance")
    assert embedded_redis.attached_url(instance) is None
    embedded_redis.publish(instance, "unix:///tmp/x.sock?db=0")
    assert embedded_redis.attached_url(instance) == "unix:///tmp/x.sock?db=0"
    # A stack killed without cleaning up: its pid is gone, so nothing attaches to it.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    path = embedded_redis.stack_file(instance)
    path.write_text(path.read_text().replace(str(os.getpid()), dead.stdout.strip()))
    assert embedded_redis.attached_url(instance) is None
    embedded_redis.unpublish(instance)
    assert not path.exists()


def test_kombu_gets_the_socket_spelling_of_a_unix_url() -> None:
    assert broker_url("unix:///tmp/r.sock?db=3") == "redis+socket:///tmp/r.sock?virtual_host=3"
    assert broker_url("redis://h:6379/1") == "redis://h:6379/1"


COMMANDS = [
    ["celery", "-A", "app.celery", "report"],
    [sys.executable, "-c", "import app.celery"],
    ["flask", "--app", "app", "routes"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[-2:]))
def test_no_command_starts_or_leaves_a_server_without_redis_url(command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_"))}
    env.pop("DATABASE_URL", None)
    before = redis_servers_in(INSTANCE)
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / command[0]), *command[1:]] if "/" not in command[0] else command
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert redis_servers_in(INSTANCE) <= before
    if embedded_redis.attached_url(str(INSTANCE)) is None:
        # No dev stack to attach to: the process refuses and says what to do.
        assert result.returncode != 0
        assert "REDIS_URL" in result.stderr and "./entrypoint.sh dev" in result.stderr
