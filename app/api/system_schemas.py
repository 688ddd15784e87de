"""Response schemas of /health and /ready, so their bodies are in the document as they are."""

from __future__ import annotations

from marshmallow import Schema
from marshmallow import fields


class HealthSchema(Schema):
    status = fields.String(metadata={"enum": ["ok"]})


class CheckSchema(Schema):
    ok = fields.Boolean(required=True)
    error = fields.String(allow_none=True, required=True)


class QueueReadinessSchema(Schema):
    ok = fields.Boolean(required=True)
    consumers = fields.Integer(required=True)
    canary = fields.String(
        required=True,
        metadata={"description": "the canary job's final state, or why none was run"},
    )


class ReadySchema(Schema):
    ready = fields.Boolean(required=True)
    database = fields.Nested(CheckSchema, required=True)
    broker = fields.Nested(CheckSchema, required=True)
    queues = fields.Dict(
        keys=fields.String(), values=fields.Nested(QueueReadinessSchema), required=True
    )
