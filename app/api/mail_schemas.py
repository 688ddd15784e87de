"""Request and response schemas of /api/v1/mail."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from marshmallow import fields
from marshmallow import pre_load
from marshmallow import validate

from app.api.model_schema import ModelSchema
from app.api.notify import ADDRESS
from app.models.mail import Mail
from app.models.mail import MailSend
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


class MailSendSchema(ModelSchema):
    class Meta:
        model = MailSend
        exclude = ("id",)


class MailSchema(ModelSchema):
    class Meta:
        model = Mail
        exclude = ("recipients", "context", "text_body", "html_body", "dedup_key", "updated_at")

    to = fields.List(fields.String(), attribute="recipients")
    # Derived from the mail's job (see Mail.state), so declared here.
    state = fields.String(metadata={"enum": [state.value for state in MailState]})
    attempts = fields.Integer()
    log = fields.List(fields.Nested(MailSendSchema))
