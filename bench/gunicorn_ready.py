"""gunicorn config file for bench/throughput.py: a readiness marker, no setting changed.

gunicorn loads the app in each worker after forking (no --preload), and a worker accepts
connections only once it has. The benchmark waits for one marker per worker, so no worker
is still importing the app (CPU on a 2-core machine) while requests are being timed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def post_worker_init(worker: Any) -> None:
    directory = os.environ.get("BENCH_READY_DIR")
    if directory:
        Path(directory, str(os.getpid())).touch()
