"""Request and response schemas of the generation endpoints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from marshmallow import ValidationError
from marshmallow import fields
from marshmallow import validate
from marshmallow import validates
from marshmallow import validates_schema

from app.api.notify import Notify

ROLES = ["system", "developer", "user", "assistant", "tool"]
MAX_BATCH = 500


# `content` as OpenAI's chat API takes it: text, a list of parts, or null (an assistant
# turn that only called tools).
CONTENT = {
    "description": "text, a list of content parts, or null",
    "nullable": True,
    "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}],
}
# Exactly one of `messages` and `prompt`.
ONE_INPUT = [{"required": ["messages"]}, {"required": ["prompt"]}]


class MessageSchema(Schema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = fields.Raw(required=True, allow_none=True, metadata=CONTENT)
    name = fields.String(validate=validate.Length(1, 100))

    @validates("content")
    def _content(self, value: Any, **_kw: Any) -> None:
        if value is None:
            return
        if isinstance(value, list) and all(isinstance(part, dict) for part in value):
            return
        if not isinstance(value, str):
            raise ValidationError("content must be a string, a list of content parts or null")


class OneInput(Schema):
    """Refuses a body with both or neither of `messages` and `prompt`, as the document says."""

    @validates_schema
    def _one_input(self, data: dict[str, Any], **_kw: Any) -> None:
        if ("messages" in data) == ("prompt" in data):
            raise ValidationError("send exactly one of `messages` and `prompt`", "_schema")


class GenerationSubmitSchema(OneInput):
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


class BatchItemSchema(OneInput):
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
    total_tokens = fields.Method("_total", metadata={"type": "integer", "nullable": True})
    estimated = fields.Boolean(attribute="usage_estimated")

    def _total(self, generation: Any) -> int | None:
        # Not stored: the sum of the two counts, as the job's result gives it.
        if generation.prompt_tokens is None and generation.completion_tokens is None:
            return None
        return int(generation.prompt_tokens or 0) + int(generation.completion_tokens or 0)


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
