"""Following generations live (Server-Sent Events) and running them in batches."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.api import Api
from tests.support.api import sse_events
from tests.support.fake_openai import Reply
from tests.support.generation_stubs import GenerationStubs


def _batch(api: Api, stubs: GenerationStubs, size: int, reply: Reply) -> tuple[str, dict[str, Any]]:
    """A batch of `size` prompts sharing a fresh marker the fake provider answers with
    `reply`; the marker and the accepted parent job."""
    marker = f"batch-{uuid.uuid4().hex[:8]}"
    stubs.openai.script(marker, reply)
    items = [{"prompt": f"{marker} item {i}"} for i in range(size)]
    body = {"provider": "fake", "model": "m", "items": items}
    return marker, api.post("/generations/batch", 202, body)


def _events(api: Api, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    response = api.client.get(f"/api/v1/jobs/{job_id}/events", headers=api.auth, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    return sse_events(response)


def test_events_stream_state_and_progress_until_the_job_ends(
    api: Api, generation_stubs: GenerationStubs
) -> None:
    marker = f"sse-{uuid.uuid4().hex[:8]}"
    answer = " ".join(f"s{i}" for i in range(40))
    generation_stubs.openai.script(marker, Reply(text=answer, chunk_delay=0.05))
    job = api.post("/generations", 202, {"provider": "fake", "model": "m", "prompt": marker})

    events = _events(api, job["id"])

    names = [name for name, _ in events]
    assert names[0] == "state" and names[-1] == "end"
    progress = [data["progress"]["current"] for name, data in events if name == "progress"]
    assert len(progress) >= 2 and progress == sorted(progress)  # the answer grew, live
    assert any(data["state"] == "started" for name, data in events if name == "state")
    end = events[-1][1]
    assert end["state"] == "succeeded"
    assert end["result"]["text"] == answer


def test_events_of_an_unknown_job_are_a_404(api: Api) -> None:
    response = api.client.get("/api/v1/jobs/no-such-job/events", headers=api.auth)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


def test_a_batch_runs_its_prompts_in_parallel_under_one_parent(
    api: Api, generation_stubs: GenerationStubs
) -> None:
    reply = Reply(text=" ".join(["b"] * 20), chunk_delay=0.1)
    marker, parent = _batch(api, generation_stubs, 5, reply)

    midway = api.wait_progress(parent["id"], at_least=0)
    assert midway["progress"]["total"] == 5
    done = api.wait(parent["id"])

    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["total"] == 5 and done["result"]["succeeded"] == 5
    assert done["progress"]["current"] == 5
    children = [api.job(child) for child in done["result"]["jobs"]]
    assert {child["parent_id"] for child in children} == {parent["id"]}
    assert {child["state"] for child in children} == {"succeeded"}
    # Parallel: every request reached the provider before the first answer was complete.
    seen = generation_stubs.openai.seen(marker)
    assert len(seen) == 5
    assert max(s.at for s in seen) < min(s.answered_at or 0 for s in seen)


def test_cancelling_a_batch_cancels_its_unfinished_generations(
    api: Api, generation_stubs: GenerationStubs
) -> None:
    reply = Reply(text=" ".join(["c"] * 400), chunk_delay=0.05)
    _marker, parent = _batch(api, generation_stubs, 3, reply)
    api.wait(parent["id"], states={"started"})
    api.wait_progress(parent["id"], at_least=0)

    api.post(f"/jobs/{parent['id']}/cancel", expect=202)

    assert api.wait(parent["id"], timeout=10)["state"] == "cancelled"
    response = api.client.get(
        "/api/v1/jobs", query_string={"task": "generation.complete", "limit": 50}, headers=api.auth
    )
    children = [j for j in response.get_json()["items"] if j["parent_id"] == parent["id"]]
    assert len(children) == 3
    for child in children:
        assert api.wait(child["id"], timeout=10)["state"] == "cancelled"


def test_a_batch_with_a_bad_item_is_refused_whole(api: Api) -> None:
    response = api.client.post(
        "/api/v1/generations/batch",
        json={
            "items": [
                {"prompt": "fine"},
                {"prompt": "x", "messages": [{"role": "user", "content": "y"}]},
            ]
        },
        headers=api.auth,
    )
    assert response.status_code == 422
    # The item is named: errors.json.items.1 (the schema's oneOf of messages and prompt).
    assert "send exactly one" in str(response.get_json()["errors"]["json"]["items"]["1"])
