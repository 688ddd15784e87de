"""Errors of the mail service: the API's 4xx problems and the outcomes of a send attempt."""

from __future__ import annotations

from app.services.errors import JobError


class UnknownTemplate(JobError):
    status = 422
    title = "Unknown mail template"


class InvalidMailContext(JobError):
    status = 422
    title = "Mail context does not fit the template"


class InvalidRecipient(JobError):
    status = 422
    title = "Invalid recipient address"


class MailNotFound(JobError):
    status = 404
    title = "Mail not found"


class SendError(Exception):
    """A send attempt failed; `code` and `reply` are the server's answer when it gave one."""

    def __init__(self, message: str, code: int | None = None, reply: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reply = reply


class TransientSendError(SendError):
    """The server was unreachable, slow or answered 4xx before taking the message: retry."""


class PermanentSendError(SendError):
    """The server answered 5xx (or TLS/AUTH cannot work): retrying would fail the same way."""


class DeliveryUnconfirmed(SendError):
    """The message was handed over but no final answer came: it is never sent again."""


class Superseded(SendError):
    """Another delivery of the same mail claimed it first; this one leaves the row alone."""
