"""POST /api/v1/datasets/<id>/answer: an answer generated from a dataset's segments."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from app.api import auth
from app.api import submitting
from app.api.notify import Notify
from app.api.schemas import JobSchema
from app.services.dataset.retrieval import MODES
from app.services.generation import answering
from config import current_settings

blp = auth.blueprint(
    "dataset_answers", __name__, url_prefix="/api/v1/datasets", description="Dataset answers"
)
REFUSALS = {
    404: "No such dataset",
    422: "Unknown provider or model, or a bad notify address",
}


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
    @blp.answers(202, JobSchema, REFUSALS, takes=AnswerSchema)
    def post(self, body: dict[str, Any], dataset_id: str) -> submitting.Accepted:
        """Retrieve the best segments, then generate an answer citing them as [n]."""
        job = answering.submit(
            submitting.celery(),
            current_settings(),
            dataset_id,
            body,
            broker_timeout=submitting.broker_timeout(),
            api_key_id=g.api_key_id,
        )
        return submitting.accepted(job)
