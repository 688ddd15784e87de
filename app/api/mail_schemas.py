"""Request and response schemas of /api/v1/mail."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from marshmallow import fields
from marshmallow import pre_load
from marshmallow import validate

from app.api.notify import ADDRESS
from app.models.mail import MailState
from app.services.mail.mails import MAX_RECIPIENTS


class MailSubmitSchema(Schema):
    template = fields.String(required=True, validate=validate.Length(1, 100))
    to = fields.List(
        fields.String(metadata=ADDRESS),
        required=True,
        validate=validate.Length(1, MAX_RECIPIENTS),
        metadata={"description": "one address or a list of addresses"},
    )
    context = fields.Dict(keys=fields.String(), load_default=dict)

    @pre_load
    def _one_address(self, data: Any, **_kw: Any) -> Any:
        # `"to": "a@example.com"` is the common case; accept it as a list of one.
        if isinstance(data, dict) and isinstance(data.get("to"), str):
            return {**data, "to": [data["to"]]}
        return data


class MailSendSchema(Schema):
    attempt = fields.Integer()
    worker = fields.String(allow_none=True)
    outcome = fields.String()
    smtp_code = fields.Integer(allow_none=True)
    smtp_response = fields.String(allow_none=True)
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class MailSchema(Schema):
    id = fields.String()
    template = fields.String()
    to = fields.List(fields.String(), attribute="recipients")
    subject = fields.String()
    state = fields.String(metadata={"enum": [state.value for state in MailState]})
    attempts = fields.Integer()
    message_id = fields.String()
    transport = fields.String(allow_none=True)
    smtp_code = fields.Integer(allow_none=True)
    smtp_response = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    job_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    log = fields.List(fields.Nested(MailSendSchema))
