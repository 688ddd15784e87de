"""The bare Celery app `bench/generation.py` compares a `worker io` process against.

No Flask, no ledger, no rows: a gevent task that makes the same streaming chat-completions
call with httpx2 (the HTTP client of the `openai` package, which Tasklane streams through)
against the same local OpenAI-compatible server, reads the stream to its
end, and counts the run in Redis with one pipelined round trip (the counterpart of the
ledger's started_at/finished_at); the run that reaches the number queued so far stamps the end.

    BENCH_BROKER_URL    the broker (the same Redis Tasklane is given)
    BENCH_PROVIDER_URL  the provider's base URL (…/v1), BENCH_PROVIDER_KEY its API key

Worker: `celery -A bench.bare_generation_app worker -P gevent -c C -Q bench_generation`.
It mirrors what Tasklane sets that matters per message: JSON only, acks_late, the io
profile's prefetch multiplier, results ignored.
"""

from __future__ import annotations

import json
import os
import time

import httpx2
import redis
from celery import Celery

QUEUE = "bench_generation"
TASK_NAME = "bench.generate"
# Keys the task writes and the benchmark reads; JOBS is how many jobs were queued so far.
COUNT_KEY, FIRST_KEY, LAST_KEY, FAILED_KEY, JOBS_KEY = (
    f"bench:bare-gen:{name}"
    for name in ("count", "first_started", "last_finished", "failed", "jobs")
)

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
PROVIDER_URL = os.environ.get("BENCH_PROVIDER_URL", "http://127.0.0.1:1/v1")
PROVIDER_KEY = os.environ.get("BENCH_PROVIDER_KEY", "")

app = Celery("bare_generation_bench", broker=BROKER_URL)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")),
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_clients: dict[str, object] = {}


def _redis() -> redis.Redis:
    client = _clients.get("redis")
    if client is None:
        client = _clients["redis"] = redis.Redis.from_url(BROKER_URL)
    return client  # type: ignore[return-value]


def _http() -> httpx2.Client:
    # One pooled client for the process, the library and limits of Tasklane's provider
    # registry. With httpx 0.28 instead, httpcore's pool re-checked every connection at
    # each response's end: half of this worker's CPU at C = 500 (py-spy, 2026-12-07).
    client = _clients.get("http")
    if client is None:
        limits = httpx2.Limits(max_connections=2000, max_keepalive_connections=200)
        headers = {"Authorization": f"Bearer {PROVIDER_KEY}"}
        client = _clients["http"] = httpx2.Client(limits=limits, timeout=120, headers=headers)
    return client  # type: ignore[return-value]


@app.task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
def generate(prompt: str) -> None:
    started = time.time()
    body = {
        "model": "bench-model",
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text: list[str] = []
    with _http().stream("POST", f"{PROVIDER_URL}/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or ():
                text.append((choice.get("delta") or {}).get("content") or "")
    pipe = _redis().pipeline(transaction=False)
    pipe.set(FIRST_KEY, repr(started), nx=True)
    pipe.incr(COUNT_KEY)
    if response.status_code != 200 or not text:
        pipe.incr(FAILED_KEY)
    pipe.get(JOBS_KEY)
    _, count, *_, jobs = pipe.execute()
    if jobs is not None and int(count) >= int(jobs):
        _redis().set(LAST_KEY, repr(time.time()))
