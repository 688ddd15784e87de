"""/api/v1/generations: LLM generations as jobs, and their streaming text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app
from flask import g
from flask.views import MethodView

from app.api import auth
from app.api import submitting
from app.api.generation_schemas import GenerationBatchSchema
from app.api.generation_schemas import GenerationSchema
from app.api.generation_schemas import GenerationSubmitSchema
from app.api.generation_schemas import ProviderSchema
from app.api.schemas import JobSchema
from app.models import Job
from app.services.generation import batches
from app.services.generation import generations
from app.services.generation.providers.registry import registry
from config import current_settings

blp = auth.blueprint(
    "generations", __name__, url_prefix="/api/v1/generations", description="LLM generations"
)
REFUSED = "Unknown provider or model, or an unusable {}"


def _submit(submit: Callable[..., Job], what: object, body: dict[str, Any]) -> submitting.Accepted:
    """Queue `what` for the calling key, to mail the body's `notify` once it has finished."""
    job = submit(
        submitting.celery(),
        what,
        broker_timeout=submitting.broker_timeout(),
        api_key_id=g.api_key_id,
        notify_to=body.get("notify"),
    )
    return submitting.accepted(job)


@blp.route("")
class GenerationCollection(MethodView):
    @blp.answers(202, JobSchema, {422: REFUSED.format("request")}, takes=GenerationSubmitSchema)
    def post(self, body: dict[str, Any]) -> submitting.Accepted:
        """Generate an answer; the job's progress shows the text as it streams in."""
        request = generations.build_request(current_settings(), body)
        return _submit(generations.submit, request, body)


@blp.route("/batch")
class GenerationBatch(MethodView):
    @blp.answers(202, JobSchema, {422: REFUSED.format("item")}, takes=GenerationBatchSchema)
    def post(self, body: dict[str, Any]) -> submitting.Accepted:
        """Generate many answers in parallel under one parent job with aggregate progress."""
        settings = current_settings()
        shared: dict[str, Any] = {
            k: body[k] for k in ("provider", "model", "parameters") if k in body
        }
        requests = []
        for index, item in enumerate(body["items"]):
            try:
                requests.append(generations.build_request(settings, {**shared, **item}))
            except generations.InvalidGeneration as exc:
                raise generations.InvalidGeneration(f"items[{index}]: {exc}") from None
        return _submit(batches.submit, requests, body)


@blp.route("/providers")
class ProviderCollection(MethodView):
    @blp.response(200, ProviderSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """Configured providers and the models each offers."""
        providers = registry(current_settings())
        return [{"name": n, "models": list(providers.models(n))} for n in providers.names()]


@blp.route("/<id:job_id>")
class GenerationItem(MethodView):
    @blp.answers(200, GenerationSchema, {404: "No generation with this job id"})
    def get(self, job_id: str) -> generations.GenerationView:
        """The whole text so far (the job's progress holds only its tail), usage, timings."""
        return generations.describe(job_id, current_app.extensions["redis"])
