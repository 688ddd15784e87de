"""Handing a message to a server (SMTP) or to the local outbox folder.

A send reports the moment of no return through `before_data`: it is called after the
server accepted sender and recipients and right before the message itself goes out. A
failure before that moment never reached the server; after it, only a server reply
tells whether the server took the message.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from abc import ABC
from abc import abstractmethod
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import TypeAlias

from app.services.mail.errors import DeliveryUnconfirmed
from app.services.mail.errors import PermanentSendError
from app.services.mail.errors import SendError
from app.services.mail.errors import Superseded
from app.services.mail.errors import TransientSendError


@dataclass(frozen=True)
class Reply:
    code: int
    text: str


# Hands the message itself over; called only once `before_data` said the attempt may.
HandOver: TypeAlias = Callable[[EmailMessage], Reply]


class Transport(ABC):
    """The send protocol every transport shares; a subclass says how it opens a session."""

    name: str
    # What a superseded attempt does not do, for its message ("sending", "writing").
    refrains_from: str

    def send(
        self,
        message: EmailMessage,
        sender: str,
        recipients: list[str],
        before_data: Callable[[], bool],
    ) -> Reply:
        """Open a session, ask `before_data` (the moment of no return), hand the message over."""
        with self._session(sender, recipients) as hand_over:
            if not before_data():
                raise Superseded(
                    f"another attempt of this mail took over; not {self.refrains_from}"
                )
            return hand_over(message)

    @abstractmethod
    def _session(self, sender: str, recipients: list[str]) -> AbstractContextManager[HandOver]:
        """Everything short of the message itself, then the step that hands it over."""

    @abstractmethod
    def delivered(self, mail_id: str) -> Reply | None:
        """The proof a message was delivered, when this transport can give one."""


def _text(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def classify(code: int, reply: bytes | str, what: str) -> SendError:
    """4xx is worth retrying, anything else the server refused is final."""
    text = _text(reply)
    message = f"{what}: server answered {code} {text}"
    if 400 <= code < 500:
        return TransientSendError(message, code, text)
    return PermanentSendError(message, code, text)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str
    user: str | None
    password: str | None
    ca_file: str | None
    connect_timeout: float
    timeout: float


class SmtpTransport(Transport):
    name = "smtp"
    refrains_from = "sending"

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context(cafile=s.ca_file)
        smtp: smtplib.SMTP
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.connect_timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.connect_timeout)
        try:
            # Connected: from here every server reply gets the (longer) send timeout.
            if smtp.sock is not None:
                smtp.sock.settimeout(s.timeout)
            smtp.ehlo()
            if s.security == "starttls":
                code, reply = smtp.starttls(context=context)
                if code != 220:
                    raise classify(code, reply, "STARTTLS")
                smtp.ehlo()
            if s.user:
                smtp.login(s.user, s.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _open(self) -> smtplib.SMTP:
        """A logged-in connection, or the send error its failure amounts to."""
        try:
            return self._connect()
        except SendError:
            raise
        except smtplib.SMTPResponseException as exc:
            raise classify(exc.smtp_code, exc.smtp_error, "connect") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentSendError(f"{self.settings.host}: {exc}") from None
        except ssl.SSLError as exc:
            # A certificate or protocol mismatch does not heal by itself.
            raise PermanentSendError(f"TLS with {self.settings.host} failed: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(
                f"could not reach {self.settings.host}:{self.settings.port}: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    @contextmanager
    def _session(self, sender: str, recipients: list[str]) -> Iterator[HandOver]:
        smtp = self._open()
        try:
            _envelope(smtp, sender, recipients)
            yield partial(_data, smtp)
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def delivered(self, mail_id: str) -> Reply | None:
        # SMTP cannot be asked whether it already holds a message.
        return None


def _envelope(smtp: smtplib.SMTP, sender: str, recipients: list[str]) -> None:
    try:
        code, reply = smtp.mail(sender)
        if code != 250:
            raise classify(code, reply, "MAIL FROM")
        for recipient in recipients:
            code, reply = smtp.rcpt(recipient)
            if code not in (250, 251):
                raise classify(code, reply, f"RCPT TO {recipient}")
    except SendError:
        raise
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientSendError(f"SMTP session broke: {type(exc).__name__}: {exc}") from None


def _data(smtp: smtplib.SMTP, message: EmailMessage) -> Reply:
    try:
        code, reply = smtp.data(message.as_bytes())
    except smtplib.SMTPDataError as exc:
        # A reply that is not 250 means the server did not take the message.
        raise classify(exc.smtp_code, exc.smtp_error, "DATA") from None
    except (TimeoutError, OSError, smtplib.SMTPException) as exc:
        raise DeliveryUnconfirmed(
            "the connection failed after the message was handed over, before the server "
            f"answered ({type(exc).__name__}: {exc}); it may have been delivered"
        ) from None
    if code != 250:
        raise classify(code, reply, "DATA")
    return Reply(code, _text(reply))


class OutboxTransport(Transport):
    """Writes each mail as `<mail id>.eml`; any mail client opens these files."""

    name = "outbox"
    refrains_from = "writing"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, mail_id: str) -> Path:
        return self.folder / f"{mail_id}.eml"

    @contextmanager
    def _session(self, sender: str, recipients: list[str]) -> Iterator[HandOver]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            yield self._write
        except OSError as exc:
            raise TransientSendError(
                f"could not write to the outbox {self.folder}: {exc}"
            ) from None

    def _write(self, message: EmailMessage) -> Reply:
        mail_id = str(message["X-Tasklane-Mail-Id"])
        # Write aside, then rename: the .eml appears whole or not at all.
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(message.as_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path(mail_id))
        return Reply(250, f"written to {self.path(mail_id)}")

    def delivered(self, mail_id: str) -> Reply | None:
        path = self.path(mail_id)
        return Reply(250, f"found in the outbox at {path}") if path.is_file() else None
