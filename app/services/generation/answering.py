"""Answers from a dataset: retrieve its best segments, then generate from them with citations.

The sources go to the provider numbered, with an instruction to cite them as [n]; the
job's result lists those sources (segment, document, score, text) as `citations`, so a
reader can check every claim. The offline provider answers extractively, with sentences
taken from the sources themselves.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from app.models import Job
from app.services.dataset import datasets
from app.services.dataset import retrieval
from app.services.errors import JobError
from app.services.generation import generations
from app.services.generation import streaming
from config import Settings

TASK = "generation.answer"
CITED_CHARS = 500
INSTRUCTION = (
    "Answer the question using only the numbered sources. Cite the sources you use as [n]. "
    "If the sources do not contain the answer, say that they do not."
)


class NothingToCite(JobError):
    status = 422
    title = "No matching segments"


def submit(
    celery_app: Celery,
    settings: Settings,
    dataset_id: str,
    body: dict[str, Any],
    *,
    broker_timeout: float,
    api_key_id: int | None,
) -> Job:
    """Check the dataset and the provider, commit the generation row, submit the job."""
    datasets.get(dataset_id)
    question = body["question"]
    request = generations.build_request(
        settings,
        {
            "provider": body.get("provider", "offline"),
            "model": body.get("model"),
            "parameters": body.get("parameters") or {},
            "prompt": question,
        },
    )
    [row] = generations.create([request])
    try:
        return generations.submit_job(
            celery_app,
            row,
            broker_timeout=broker_timeout,
            api_key_id=api_key_id,
            task=TASK,
            notify_to=body.get("notify"),
            extra_args={
                "dataset_id": dataset_id,
                "question": question,
                "top_k": body.get("top_k", 5),
                "mode": body.get("mode", "keyword"),
            },
        )
    except JobError:
        generations.discard([row.id])
        raise


def compose(question: str, sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    numbered = "\n\n".join(f"[{n}] {s['text']}" for n, s in enumerate(sources, 1))
    return [
        {"role": "system", "content": INSTRUCTION},
        {"role": "user", "content": f"Sources:\n\n{numbered}\n\nQuestion: {question}"},
    ]


def run(
    generation_id: str,
    *,
    dataset_id: str,
    question: str,
    top_k: int,
    mode: str,
    settings: Settings,
    report: streaming.Reporter,
    job_id: str | None = None,
) -> dict[str, Any]:
    sources = retrieval.retrieve(dataset_id, question, top_k=top_k, mode=mode)
    if not sources:
        raise NothingToCite(f"no segment of dataset {dataset_id} matches the question")
    # The composed messages are stored with the outcome: no write of their own.
    result = streaming.run(
        generation_id, settings, report, job_id, messages=compose(question, sources)
    )
    result["citations"] = [
        {
            "n": n,
            "segment_id": s["segment_id"],
            "document_id": s["document_id"],
            "document_name": s["document_name"],
            "position": s["position"],
            "score": s["score"],
            "text": s["text"][:CITED_CHARS],
        }
        for n, s in enumerate(sources, 1)
    ]
    return result
