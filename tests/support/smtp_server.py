"""A real SMTP server on 127.0.0.1 (aiosmtpd): STARTTLS on a test CA's certificate, AUTH.

Tests script its answers per recipient address: a queue of DATA replies ("451 ..." makes
the next delivery to that address fail transiently) and a hook that runs when a message
to that address has been received, before the server answers.
"""

from __future__ import annotations

import ssl
import threading
from collections import defaultdict
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from aiosmtpd.smtp import LoginPassword

from tests.support.processes import free_port as free_port  # re-exported for callers

USER = "tasklane"
PASSWORD = "s3cret-for-tests"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    # The TLS session the message came over; None for plain text.
    tls: bool
    authenticated: bool


class Handler:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: dict[str, deque[str]] = defaultdict(deque)
        self.on_receive: dict[str, Callable[[EmailMessage], None]] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            for address in envelope.rcpt_tos:
                if self.replies[address]:
                    return self.replies[address].popleft()
            message = message_from_bytes(envelope.original_content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.received.append(
                Received(
                    sender=envelope.mail_from,
                    recipients=list(envelope.rcpt_tos),
                    message=message,
                    tls=bool(session.ssl or server.transport.get_extra_info("ssl_object")),
                    authenticated=bool(session.authenticated),
                )
            )
            hooks = [self.on_receive.pop(a) for a in envelope.rcpt_tos if a in self.on_receive]
        for hook in hooks:
            hook(message)
        return "250 2.0.0 Ok: queued"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.recipients]


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    # handled=False: aiosmtpd answers a refusal with 535 itself.
    return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    host: str
    port: int
    ca_file: Path
    handler: Handler
    implicit_tls: bool = False

    def env(self) -> dict[str, str]:
        """Worker settings that deliver to this server over TLS with AUTH."""
        return {
            "MAIL_SMTP_HOST": self.host,
            "MAIL_SMTP_PORT": str(self.port),
            "MAIL_SMTP_SECURITY": "ssl" if self.implicit_tls else "starttls",
            "MAIL_SMTP_USER": USER,
            "MAIL_SMTP_PASSWORD": PASSWORD,
            "MAIL_SMTP_CA_FILE": str(self.ca_file),
            "MAIL_SMTP_CONNECT_TIMEOUT": "5",
            "MAIL_SMTP_TIMEOUT": "10",
            "MAIL_FROM": "Tasklane Tests <tasklane@tests.example>",
        }


@contextmanager
def smtp_server(tmp: Path, *, implicit_tls: bool = False) -> Iterator[SmtpServer]:
    """STARTTLS by default; `implicit_tls` speaks TLS from the first byte (port 465 style)."""
    ca = trustme.CA()
    # The worker connects to 127.0.0.1, so the certificate names that address.
    cert = ca.issue_cert("127.0.0.1", "localhost")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(tls)
    tmp.mkdir(parents=True, exist_ok=True)
    ca_file = tmp / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = Handler()
    port = free_port()
    tls_options: dict[str, Any] = (
        # aiosmtpd only counts STARTTLS as TLS for AUTH, and warns when AUTH is required
        # without it; here the whole session is TLS, so AUTH is offered (the client still
        # authenticates, which tests check) rather than required.
        {"ssl_context": tls, "auth_require_tls": False, "auth_required": False}
        if implicit_tls
        else {"tls_context": tls, "require_starttls": True, "auth_required": True}
    )
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        **tls_options,
        authenticator=_authenticate,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, ca_file, handler, implicit_tls)
    finally:
        controller.stop()
