"""Generations on the real gevent worker against a local OpenAI-compatible provider."""

from __future__ import annotations

import uuid
from typing import Any

from flask.testing import FlaskClient

from tests.support.api import Api
from tests.support.fake_openai import Reply
from tests.support.generation_stubs import GenerationStubs
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess
from tests.support.workers import consumers_of

ARTICLE = (
    "Tasklane runs slow work on Celery workers. "
    "Workers consume queues and record every job in a ledger. "
    "The weather was pleasant on the day the project started. "
    "The ledger lets the API show each job's state, progress and result. "
    "Queues are served by worker profiles that suit their work."
)


def _scripted(
    api: Api, stubs: GenerationStubs, *replies: Reply, provider: str = "fake"
) -> tuple[str, dict[str, Any]]:
    """A generation whose prompt holds a fresh marker the fake provider answers with
    `replies` in turn; the marker (to ask the provider what it saw) and the accepted job."""
    marker = f"case-{uuid.uuid4().hex[:10]}"
    stubs.openai.script(marker, *replies)
    body = {"provider": provider, "model": "gpt-test", "prompt": f"{marker} go"}
    return marker, api.call("POST", "/generations", 202, json=body)


def _generation(api: Api, job_id: str) -> dict[str, Any]:
    return api.call("GET", f"/generations/{job_id}")


def test_offline_provider_answers_with_an_extract_of_the_prompt(api: Api) -> None:
    body = {"prompt": ARTICLE, "parameters": {"max_sentences": 2}}
    job = api.call("POST", "/generations", 202, json=body)
    assert job["queue"] == "generation"

    done = api.wait(job["id"])

    assert done["state"] == "succeeded", done["error"]
    result = done["result"]
    assert result["provider"] == "offline"
    assert result["model"] == "extractive-summary"
    sentences = result["text"].split(". ")
    assert len(sentences) == 2
    # Extractive: every sentence is the prompt's own, and the off-topic one is left out.
    assert all(s.rstrip(".") in ARTICLE for s in sentences)
    assert "weather" not in result["text"]
    assert result["usage"]["completion_tokens"] > 0


def test_streaming_progress_shows_the_answer_growing(
    api: Api, generation_stubs: GenerationStubs
) -> None:
    answer = " ".join(f"word{i}" for i in range(60))
    marker, job = _scripted(api, generation_stubs, Reply(text=answer, chunk_delay=0.05))
    midway = api.wait_progress(job["id"], at_least=5)

    assert midway["state"] == "started"
    assert midway["progress"]["message"].startswith("word0 word1 ")
    partial = _generation(api, job["id"])
    assert partial["status"] == "streaming"
    assert answer.startswith(partial["text"]) and len(partial["text"]) < len(answer)

    done = api.wait(job["id"])
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["text"] == answer
    assert done["result"]["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 60,
        "total_tokens": 62,
        "estimated": False,
    }
    assert done["result"]["latency_ms"] >= done["result"]["first_token_ms"] > 0
    # What the provider received: the real protocol, streaming with usage, with the key.
    seen = generation_stubs.openai.seen(marker)[0]
    assert seen.body["stream"] is True
    assert seen.body["stream_options"] == {"include_usage": True}
    assert seen.body["model"] == "gpt-test"
    assert seen.headers["Authorization"] == "Bearer sk-test-key"


def test_429_and_500_are_retried_honouring_retry_after(
    api: Api, generation_stubs: GenerationStubs
) -> None:
    marker, job = _scripted(
        api,
        generation_stubs,
        Reply(status=429, retry_after=1, error="Rate limit reached"),
        Reply(status=500, error="The server had an error"),
        Reply(text="finally"),
    )
    done = api.wait(job["id"])

    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["text"] == "finally"
    assert done["attempts"] == 3
    first, second, _third = generation_stubs.openai.seen(marker)
    assert second.at - first.at >= 1.0  # Retry-After: 1 was honoured


def test_a_400_fails_at_once_with_the_providers_message(
    api: Api, generation_stubs: GenerationStubs
) -> None:
    message = "max_tokens is too large: 999999"
    marker, job = _scripted(api, generation_stubs, Reply(status=400, error=message))
    done = api.wait(job["id"])

    assert done["state"] == "failed"
    assert done["attempts"] == 1
    assert done["error"]["type"] == "ExpectedFailure"
    assert message in done["error"]["message"] and "HTTP 400" in done["error"]["message"]
    assert len(generation_stubs.openai.seen(marker)) == 1


def test_the_deadline_stops_a_trickling_stream_under_gevent(
    api: Api, generation_stubs: GenerationStubs
) -> None:
    # Each chunk arrives well within any read timeout, but the whole answer would take 20s:
    # only a deadline on the whole call stops it (soft time limits never fire on gevent).
    answer = " ".join(f"w{i}" for i in range(100))
    _marker, job = _scripted(
        api, generation_stubs, Reply(text=answer, chunk_delay=0.2), provider="fake-strict"
    )
    done = api.wait(job["id"], timeout=20)

    assert done["state"] == "failed"
    assert done["error"]["type"] == "ProviderTimeout"
    assert done["attempts"] == 3  # the first try and GENERATION_MAX_RETRIES=2 retries
    kept = _generation(api, job["id"])
    assert kept["status"] == "failed"
    assert kept["text"] and answer.startswith(kept["text"]) and len(kept["text"]) < 40


def test_cancel_stops_the_stream_and_keeps_the_partial_text(
    api: Api, generation_stubs: GenerationStubs
) -> None:
    answer = " ".join(f"t{i}" for i in range(400))
    _marker, job = _scripted(api, generation_stubs, Reply(text=answer, chunk_delay=0.05))
    api.wait_progress(job["id"], at_least=5)
    api.post(f"/jobs/{job['id']}/cancel", expect=202)

    done = api.wait(job["id"], timeout=5)
    assert done["state"] == "cancelled"
    kept = _generation(api, job["id"])
    assert kept["status"] == "cancelled"
    assert kept["text"].startswith("t0 t1 t2 t3 t4 ")
    assert answer.startswith(kept["text"]) and len(kept["text"]) < len(answer)


def test_bad_requests_are_refused_before_anything_is_queued(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    def post(body: dict[str, Any]) -> dict[str, Any]:
        response = client.post("/api/v1/generations", json=body, headers=auth)
        assert response.status_code == 422, response.get_json()
        assert response.content_type == "application/problem+json"
        return dict(response.get_json())

    assert "no provider named 'nope'" in post({"provider": "nope", "prompt": "x"})["detail"]
    assert "not 'gpt-9'" in post({"provider": "offline", "model": "gpt-9", "prompt": "x"})["detail"]
    both = {"prompt": "x", "messages": [{"role": "user", "content": "y"}]}
    # Refused by the schema (the document states it as oneOf), naming the body.
    assert "exactly one" in str(post(both)["errors"]["json"]["_schema"])
    assert "may not set stream" in post({"prompt": "x", "parameters": {"stream": False}})["detail"]
    assert "errors" in post({"messages": [{"role": "wizard", "content": "x"}]})
    assert client.post("/api/v1/generations", json={"prompt": "x"}).status_code == 401


def test_cancel_reaches_a_generation_waiting_on_a_silent_provider(
    api: Api, generation_stubs: GenerationStubs
) -> None:
    # No byte for 15s: only the cancel watcher can stop it before the answer comes.
    marker, job = _scripted(api, generation_stubs, Reply(text="too late", delay=15))
    wait_for(lambda: generation_stubs.openai.seen(marker), what="the request to reach the provider")
    api.post(f"/jobs/{job['id']}/cancel", expect=202)

    done = api.wait(job["id"], timeout=5)
    assert done["state"] == "cancelled"
    assert _generation(api, job["id"])["status"] == "cancelled"


def test_only_gevent_workers_consume_the_generation_queue(
    api: Api, workers: dict[str, WorkerProcess]
) -> None:
    # A prefork worker handed the queue (a fixture that paused and resumed consumers) runs
    # generations without the gevent deadline and cancel watcher: the deadline and silent
    # provider tests above then wait for a job that never ends. Whatever ran before in the
    # session, the queue must be the gevent workers' alone.
    celery_app = api.client.application.extensions["celery"]
    consumers = consumers_of(celery_app, "generation")
    stats = celery_app.control.inspect(destination=consumers, timeout=5.0).stats() or {}
    pools = {name: stats[name]["pool"]["implementation"] for name in stats}

    assert workers["io"].hostname in consumers
    assert sorted(pools) == consumers
    assert [name for name, pool in pools.items() if "gevent" not in pool] == []
