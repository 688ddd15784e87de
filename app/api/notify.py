"""The `notify` request field: who gets the job_finished mail once a job (or upload) finished.

Addresses are checked exactly as `POST /mail` checks its recipients, so a notification that
could never be sent is refused with a 422 at submit rather than lost after the job ran.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError
from marshmallow import fields

from app.services.mail import mails
from app.services.mail.errors import InvalidRecipient

# One address as the document states it: exactly what `mails.check_recipients` accepts.
ADDRESS = {
    "type": "string",
    "pattern": mails.ADDRESS_PATTERN,
    "maxLength": mails.MAX_ADDRESS_CHARS,
}

_ONE = mails.ADDRESS_PATTERN.removeprefix("^").removesuffix("$")
# The multipart `notify` field: addresses separated by commas, or nothing.
FORM_ADDRESSES = f"^( *{_ONE} *(, *{_ONE} *)*)?$"
_FORM = re.compile(FORM_ADDRESSES.removeprefix("^").removesuffix("$"))

DESCRIPTION = (
    "e-mail addresses (one, or a list) sent the job_finished mail once the job has finished "
    "(succeeded, failed or cancelled)"
)


def addresses(value: Any) -> list[str] | None:
    """Checked addresses from a request value; None when nobody is to be told."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRecipient("notify must be an e-mail address or a list of them")
    if not value:
        return None
    return mails.check_recipients(value)


def form_addresses(values: list[str]) -> list[str] | None:
    """Addresses from multipart `notify` fields, each one address or comma separated."""
    found = [part.strip() for value in values for part in value.split(",")]
    checked = addresses([address for address in found if address])
    for value in values:
        # Each address passed; what is left is the list's shape ("a@x.org,,b@y.org").
        if _FORM.fullmatch(value) is None:
            raise InvalidRecipient(
                f"notify {value!r} is not a comma-separated list of e-mail addresses"
            )
    return checked


class Notify(fields.Field[list[str] | None]):
    """`notify` in a JSON body: a list of addresses, or one address as a plain string."""

    def __init__(self, description: str = DESCRIPTION, **kwargs: Any) -> None:
        metadata = {
            "type": "array",
            "items": ADDRESS,
            "maxItems": mails.MAX_RECIPIENTS,
            "description": description,
        }
        super().__init__(allow_none=True, metadata=metadata, **kwargs)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[str] | None:
        try:
            return addresses(value)
        except InvalidRecipient as exc:
            raise ValidationError(str(exc)) from None
