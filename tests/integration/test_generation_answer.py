"""POST /datasets/{id}/answer: retrieval from an indexed dataset, then a cited generation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fixtures.dataset.api import DatasetApi
from tests.support.api import Api
from tests.support.fake_openai import Reply
from tests.support.generation_stubs import GenerationStubs

TEXTS = {
    "kettle.txt": "The copper kettle whistles when the water boils. It sits on the old stove.",
    "sailing.md": "# Sailing\nA bowline knot makes a fixed loop. Sailors tie it one-handed.",
}


@pytest.fixture(scope="module")
def dataset(api_token: str, app: Any, workers: Any) -> dict[str, Any]:
    datasets = DatasetApi(app.test_client(), {"Authorization": f"Bearer {api_token}"})
    created, _accepted = datasets.indexed_texts(f"answers-{uuid.uuid4().hex[:6]}", TEXTS)
    return created


def _answer(api: Api, dataset_id: str, expect: int = 202, **body: Any) -> dict[str, Any]:
    response = api.client.post(f"/api/v1/datasets/{dataset_id}/answer", json=body, headers=api.auth)
    assert response.status_code == expect, response.get_json()
    return dict(response.get_json())


def test_offline_answer_quotes_and_cites_the_matching_document(
    api: Api, dataset: dict[str, Any]
) -> None:
    job = _answer(api, dataset["id"], question="Which knot makes a fixed loop?", top_k=1)
    done = api.wait(job["id"])

    assert done["state"] == "succeeded", done["error"]
    [citation] = done["result"]["citations"]
    assert citation["n"] == 1 and citation["document_name"] == "sailing.md"
    assert "bowline knot makes a fixed loop" in done["result"]["text"]


def test_the_provider_gets_numbered_sources_and_the_question(
    api: Api, dataset: dict[str, Any], generation_stubs: GenerationStubs
) -> None:
    question = "Where does the kettle sit? " + uuid.uuid4().hex[:8]
    generation_stubs.openai.script(question, Reply(text="On the old stove [1]."))

    job = _answer(api, dataset["id"], question=question, provider="fake", model="m", top_k=2)
    done = api.wait(job["id"])

    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["text"] == "On the old stove [1]."
    assert done["result"]["citations"][0]["document_name"] == "kettle.txt"
    system, user = generation_stubs.openai.seen(question)[0].body["messages"]
    assert system["role"] == "system" and "[n]" in system["content"]
    assert user["content"].startswith("Sources:\n\n[1] The copper kettle")
    assert user["content"].endswith(f"Question: {question}")


def test_a_question_nothing_matches_fails_with_a_clear_message(
    api: Api, dataset: dict[str, Any]
) -> None:
    done = api.wait(_answer(api, dataset["id"], question="zebra quantum")["id"])
    assert done["state"] == "failed"
    assert "no segment of dataset" in done["error"]["message"]


def test_an_unknown_dataset_is_a_404(api: Api) -> None:
    problem = _answer(api, "no-such-dataset", expect=404, question="anything")
    assert problem["title"] == "Dataset not found"


def test_document_indexing_is_traced_too(api: Api, dataset: dict[str, Any]) -> None:
    response = api.client.get(
        "/api/v1/traces",
        query_string={"operation": "dataset.index_document", "status": "succeeded"},
        headers=api.auth,
    )
    traces = response.get_json()["items"]
    assert traces and all(t["latency_ms"] is not None and t["job_id"] for t in traces)
