"""Request and response schemas of the generation endpoints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate
from marshmallow import validates

from app.api.notify import Notify

ROLES = ["system", "developer", "user", "assistant", "tool"]
MAX_BATCH = 500


class MessageSchema(Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = fields.Raw(required=True, metadata={"description": "text, or a list of parts"})
    name = fields.String(validate=validate.Length(1, 100))

    @validates("content")
    def _content(self, value: Any, **_kw: Any) -> None:
        if not isinstance(value, str | list):
            raise ValidationError("content must be a string or a list of content parts")


class GenerationSubmitSchema(Schema):
    provider = fields.String(
        load_default="offline", validate=validate.Length(1, 100), metadata={"example": "offline"}
    )
    model = fields.String(validate=validate.Length(1, 200))
    messages = fields.List(fields.Nested(MessageSchema), validate=validate.Length(min=1))
    prompt = fields.String(validate=validate.Length(min=1))
    parameters = fields.Dict(
        keys=fields.String(),
        load_default=dict,
        metadata={"description": "passed to the provider: temperature, max_tokens, ..."},
    )
    notify = Notify()


class BatchItemSchema(Schema):
    messages = fields.List(fields.Nested(MessageSchema), validate=validate.Length(min=1))
    prompt = fields.String(validate=validate.Length(min=1))


class GenerationBatchSchema(Schema):
    provider = fields.String(load_default="offline", validate=validate.Length(1, 100))
    model = fields.String(validate=validate.Length(1, 200))
    items = fields.List(
        fields.Nested(BatchItemSchema), required=True, validate=validate.Length(1, MAX_BATCH)
    )
    parameters = fields.Dict(keys=fields.String(), load_default=dict)
    notify = Notify(
        "e-mail addresses (one, or a list) sent the job_finished mail once the parent job "
        "has finished, that is once every item has"
    )


class UsageSchema(Schema):
    prompt_tokens = fields.Integer(allow_none=True)
    completion_tokens = fields.Integer(allow_none=True)
    estimated = fields.Boolean(attribute="usage_estimated")


class GenerationSchema(Schema):
    id = fields.String()
    job_id = fields.String(allow_none=True)
    provider = fields.String()
    model = fields.String()
    status = fields.String()
    text = fields.String(metadata={"description": "the whole answer so far"})
    finish_reason = fields.String(allow_none=True)
    usage = fields.Function(lambda g: UsageSchema().dump(g), metadata={"type": "object"})
    latency_ms = fields.Float(allow_none=True)
    first_token_ms = fields.Float(allow_none=True)
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ProviderSchema(Schema):
    name = fields.String()
    models = fields.List(fields.String(), metadata={"description": "empty: any model"})
