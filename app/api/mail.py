"""/api/v1/mail: queue a templated mail and follow its delivery."""

from __future__ import annotations

from typing import Any

from flask import g
from flask import url_for
from flask.views import MethodView

from app.api import auth
from app.api import submitting
from app.api.mail_schemas import MailSchema
from app.api.mail_schemas import MailSubmitSchema
from app.models.mail import Mail
from app.services.mail import mails

blp = auth.blueprint("mail", __name__, url_prefix="/api/v1/mail", description="Templated mail")
REFUSED = "Unknown template, bad context or invalid recipient"


@blp.route("")
class MailCollection(MethodView):
    @blp.answers(202, MailSchema, {422: REFUSED}, takes=MailSubmitSchema)
    def post(self, body: dict[str, Any]) -> tuple[Mail, int, dict[str, str]]:
        """Queue a mail rendered from a template; answers at once with the queued mail."""
        mail, _ = mails.queue_mail(
            submitting.celery(),
            template=body["template"],
            to=body["to"],
            context=body["context"],
            api_key_id=g.api_key_id,
        )
        return mail, 202, {"Location": url_for("mail.MailItem", mail_id=mail.id)}


@blp.route("/<mail_id>")
class MailItem(MethodView):
    @blp.answers(200, MailSchema, {404: "No such mail"})
    def get(self, mail_id: str) -> Mail:
        """State, attempts, the server's last reply, Message-ID and the send log of a mail."""
        return mails.get(mail_id)
