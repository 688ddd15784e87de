"""Run the schemathesis CLI against a real gunicorn API, as the README's contract run does.

    uv run python -m tests.support.contract_run [schemathesis run options]

It claims a Redis database and a fresh database exactly as the test session does (see
tests/support/services.py), applies migrations, creates an API key, serves the API through
`entrypoint.sh api` (gunicorn, gevent) on a free port, runs
`schemathesis run <url>/api/v1/openapi.json -H 'Authorization: Bearer <key>' OPTIONS`,
then stops gunicorn and drops what it claimed. No worker runs: submitted jobs stay queued.
Default options: all checks, 100 examples per operation, one worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from app.api.schemas import MAX_WAIT_SECONDS
from tests.support import services
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
# One worker: schemathesis's generation under two threads tripped CPython 3.11's
# "AST constructor recursion depth mismatch" (a thread-safety bug in `ast`, fixed in later
# releases) and errored whole phases. The request timeout outlasts the longest valid
# long-poll: no worker runs here, so `GET /jobs/{id}?wait=59` of a queued job takes 59 s.
DEFAULT_OPTIONS = [
    "--checks",
    "all",
    "--max-examples",
    "100",
    "--workers",
    "1",
    "--request-timeout",
    str(MAX_WAIT_SECONDS + 15),
]


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def main(argv: list[str]) -> int:
    options = argv or DEFAULT_OPTIONS
    with (
        tempfile.TemporaryDirectory() as tmp,
        services.redis_server(Path(tmp) / "redis") as redis_url,
        services.database(Path(tmp) / "db") as database_url,
    ):
        port = services.free_port()
        env = {
            **os.environ,
            "TASKLANE_ENV": "testing",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "API_BIND": f"127.0.0.1:{port}",
            "API_WORKERS": "1",
            "INSPECT_TIMEOUT": "0.5",
            # No worker runs, so a job's event stream never reaches `end`: each would hold
            # schemathesis until its request timeout. Closed at its limit, it is a whole answer.
            "API_EVENTS_MAX_SECONDS": "2",
            "MAIL_OUTBOX_DIR": str(Path(tmp) / "outbox"),
            "DATASET_STORAGE_DIR": str(Path(tmp) / "uploads"),
        }
        print("contract run: migrating and creating an API key", flush=True)
        subprocess.run(["flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True)
        created = subprocess.run(
            ["flask", "--app", "app", "keys", "create", "contract"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        key = next(word for word in created.split() if word.startswith("tl_"))
        base = f"http://127.0.0.1:{port}"
        api = subprocess.Popen(["./entrypoint.sh", "api"], cwd=ROOT, env=env)
        try:
            wait_for(lambda: _up(f"{base}/api/v1/health"), timeout=120, what="gunicorn")
            print(f"contract run: schemathesis {' '.join(options)} against {base}", flush=True)
            return subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "run",
                    f"{base}/api/v1/openapi.json",
                    "-H",
                    f"Authorization: Bearer {key}",
                    *options,
                ],
                cwd=ROOT,
                env=env,
            ).returncode
        finally:
            api.send_signal(signal.SIGTERM)
            api.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
