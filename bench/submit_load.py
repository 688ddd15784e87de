"""The submission benchmark's load: concurrent keep-alive clients POSTing single jobs, and
one client POSTing batches (bench/submit.py drives both against each server)."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from dataclasses import dataclass

from bench import support
from bench.support import BenchError
from bench.support import Progress

SUBMIT_PATH = "/api/v1/jobs"
BATCH_PATH = "/api/v1/jobs/batch"
REQUEST_TIMEOUT = 60.0


@dataclass
class SubmitResult:
    requests: int
    clients: int
    seconds: float
    latencies: list[float]
    statuses: dict[str, int]

    @property
    def non_202(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != "202")

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def quantile(self, q: int) -> float:
        lat = sorted(self.latencies)
        if len(lat) < 2:
            return lat[0]
        return statistics.quantiles(lat, n=100, method="inclusive")[q - 1]


def drive(port: int, token: str, total: int, clients: int) -> SubmitResult:
    """`clients` threads, one keep-alive connection each, POST until `total` were sent."""
    body = json.dumps({"task": support.CANARY, "args": {}}).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
        "Connection": "keep-alive",
    }
    lock = threading.Lock()
    remaining = [total]
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    def take() -> bool:
        with lock:
            if remaining[0] <= 0:
                return False
            remaining[0] -= 1
            return True

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        try:
            while take():
                sent = time.perf_counter()
                try:
                    conn.request("POST", SUBMIT_PATH, body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status = str(response.status)
                except (OSError, http.client.HTTPException) as exc:
                    status = f"error {type(exc).__name__}"
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
                elapsed = time.perf_counter() - sent
                with lock:
                    latencies.append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    progress = Progress("responses", total)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        progress.update(len(latencies))
        reason = progress.stuck()
        if reason:
            raise BenchError(f"submissions: {len(latencies)}/{total} answered; {reason}")
        for thread in threads:
            thread.join(timeout=support.POLL_INTERVAL / len(threads))
    seconds = time.perf_counter() - started
    progress.update(len(latencies))
    progress.finish()
    return SubmitResult(len(latencies), clients, seconds, latencies, statuses)


def batch_rate(port: int, token: str, size: int, batches: int) -> tuple[float, int]:
    """One client POSTs `batches` batches of `size` jobs; jobs accepted per second."""
    body = json.dumps({"jobs": [{"task": support.CANARY, "args": {}}] * size}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    accepted = 0
    started = time.perf_counter()
    try:
        for _ in range(batches):
            conn.request("POST", BATCH_PATH, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 202:
                raise BenchError(f"batch answered {response.status}: {answer[:300]!r}")
            accepted += len(json.loads(answer)["jobs"])
    finally:
        conn.close()
    return accepted / (time.perf_counter() - started), accepted
