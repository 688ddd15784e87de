"""/api/v1/traces: operation traces kept by the database sink."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from app.api import access
from app.api import auth
from app.api import paging
from app.api import validation
from app.api.model_schema import ModelSchema
from app.models.trace import Trace
from app.services import pagination
from app.services import tenancy

STATUSES = ["succeeded", "failed", "cancelled", "retrying", "started"]

blp = auth.blueprint(
    "traces", __name__, url_prefix="/api/v1/traces", description="Operation traces", json_body=False
)


class TraceQuerySchema(Schema):
    operation = fields.String(validate=validate.Length(1, 200))
    status = fields.String(validate=validate.OneOf(STATUSES))
    job_id = fields.String(validate=validate.Length(1, 36))
    parent_job_id = fields.String(validate=validate.Length(1, 36))
    since = validation.UtcDateTime(metadata={"description": "only traces created at or after"})
    limit = paging.limit_field()
    cursor = paging.cursor_field()


class TraceSchema(ModelSchema):
    class Meta:
        model = Trace


class TracePageSchema(Schema):
    items = fields.List(fields.Nested(TraceSchema))
    next_cursor = fields.String(allow_none=True)


@blp.route("")
class TraceCollection(MethodView):
    @blp.arguments(TraceQuerySchema, location="query")
    @blp.response(200, TracePageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Traces newest first, filtered; pass `next_cursor` back as `cursor` for more."""
        query = tenancy.visible_traces(pagination.newest_first(Trace), access.project_filter())
        for name in ("operation", "status", "job_id", "parent_job_id"):
            if args.get(name):
                query = query.where(getattr(Trace, name) == args[name])
        if args.get("since"):
            query = query.where(Trace.created_at >= args["since"])
        items, next_cursor = pagination.page(
            query, Trace.created_at, Trace.id, limit=args["limit"], cursor=args.get("cursor")
        )
        return {"items": items, "next_cursor": next_cursor}
