"""One gunicorn API process for a benchmark, its own counters, and a keep-alive client.

`start_api` runs one gevent worker with bench/gunicorn_stats.py, which makes the process
write what it sent PostgreSQL and its notification figures to a file `api_stats` reads.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import support
from bench.support import BenchError
from tests.support.services import free_port
from tests.support.workers import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
API_START_TIMEOUT = 120.0
REQUEST_TIMEOUT = 30.0


def start_api(
    services: support.Services, tmp: Path, token_env: dict[str, str]
) -> tuple[WorkerProcess, int, Path]:
    """One gunicorn gevent worker, counting its statements into the returned directory."""
    port = free_port()
    stats_dir = tmp / f"api-stats-{port}"
    stats_dir.mkdir()
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1"]
    command += ["--worker-connections", "4000", "-b", f"127.0.0.1:{port}"]
    command += ["--no-control-socket", "-c", str(ROOT / "bench" / "gunicorn_stats.py")]
    command += ["app:create_app()"]
    env = support.tasklane_env(services, BENCH_STATS_DIR=str(stats_dir), **token_env)
    api = WorkerProcess("gunicorn", command, env=env, log_dir=tmp)
    support.phase("api: starting " + " ".join(command[1:]))
    api.spawn()
    deadline = time.monotonic() + API_START_TIMEOUT
    while not (list(stats_dir.glob("*.json")) and support.api_healthy(port)):
        if (api.process and api.process.poll() is not None) or time.monotonic() > deadline:
            api.stop()
            raise BenchError(f"gunicorn did not come up; {support.tail(api)}")
        time.sleep(support.POLL_INTERVAL)
    return api, port, stats_dir


def api_stats(stats_dir: Path) -> dict[str, Any]:
    files = list(stats_dir.glob("*.json"))
    if len(files) != 1:
        raise BenchError(f"expected one API worker's stats in {stats_dir}, found {len(files)}")
    figures: dict[str, Any] = json.loads(files[0].read_text())
    return figures


class Client:
    """One keep-alive HTTP connection to the API with a key."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (),
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=data, headers={**self.headers, **(headers or {})})
        response = self.conn.getresponse()
        answer = json.loads(response.read())
        if response.status >= 300 and response.status not in ok:
            raise BenchError(f"{method} {path}: {response.status} {answer}")
        return answer

    def submit(self, task: str, args: dict[str, Any]) -> str:
        job_id: str = self.call("POST", "/api/v1/jobs", {"task": task, "args": args})["id"]
        return job_id

    def close(self) -> None:
        self.conn.close()
