"""POST /api/v1/datasets/<id>/answer: an answer generated from a dataset's segments."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask import g
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from app.api.auth import require_api_key
from app.api.auth import require_json_body
from app.api.notify import Notify
from app.api.schemas import JobSchema
from app.models import Job
from app.services.dataset.retrieval import MODES
from app.services.generation import answering
from config import current_settings

blp = Blueprint(
    "dataset_answers", __name__, url_prefix="/api/v1/datasets", description="Dataset answers"
)
blp.before_request(require_api_key)
blp.before_request(require_json_body)


class AnswerSchema(Schema):
    question = fields.String(required=True, validate=validate.Length(1, 2000))
    provider = fields.String(load_default="offline", validate=validate.Length(1, 100))
    model = fields.String(validate=validate.Length(1, 200))
    parameters = fields.Dict(keys=fields.String(), load_default=dict)
    top_k = fields.Integer(strict=True, load_default=5, validate=validate.Range(1, 20))
    mode = fields.String(load_default="keyword", validate=validate.OneOf(MODES))
    notify = Notify()


@blp.route("/<dataset_id>/answer")
class DatasetAnswer(MethodView):
    @blp.arguments(AnswerSchema)
    @blp.response(202, JobSchema)
    @blp.alt_response(404, description="No such dataset")
    @blp.alt_response(422, description="Unknown provider or model, or a bad notify address")
    def post(self, body: dict[str, Any], dataset_id: str) -> tuple[Job, int, dict[str, str]]:
        """Retrieve the best segments, then generate an answer citing them as [n]."""
        settings = current_settings()
        job = answering.submit(
            current_app.extensions["celery"],
            settings,
            dataset_id,
            body,
            broker_timeout=float(settings.broker.submit_timeout),
            api_key_id=g.api_key_id,
        )
        return job, 202, {"Location": url_for("jobs.JobItem", job_id=job.id)}
