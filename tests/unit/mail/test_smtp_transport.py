"""The SMTP transport against a real server on loopback: which failures are worth a retry."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from app.services.mail.errors import DeliveryUnconfirmed
from app.services.mail.errors import PermanentSendError
from app.services.mail.errors import Superseded
from app.services.mail.errors import TransientSendError
from app.services.mail.transport import SmtpSettings
from app.services.mail.transport import SmtpTransport
from tests.support.smtp_server import PASSWORD
from tests.support.smtp_server import USER
from tests.support.smtp_server import SmtpServer
from tests.support.smtp_server import free_port
from tests.support.smtp_server import smtp_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path_factory.mktemp("smtp")) as running:
        yield running


def transport(server: SmtpServer, **overrides: object) -> SmtpTransport:
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "security": "starttls",
        "user": USER,
        "password": PASSWORD,
        "ca_file": str(server.ca_file),
        "connect_timeout": 2.0,
        "timeout": 5.0,
        **overrides,
    }
    return SmtpTransport(SmtpSettings(**values))  # type: ignore[arg-type]


def message(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "hello"
    msg["From"] = "t@example.net"
    msg["To"] = to
    msg["Message-ID"] = f"<{to}>"
    msg.set_content("hi")
    return msg


def handed_over() -> bool:
    return True


def test_accepted_mail_returns_the_server_reply(server: SmtpServer) -> None:
    reply = transport(server).send(
        message("ok@example.org"), "t@example.net", ["ok@example.org"], handed_over
    )
    assert reply.code == 250
    assert len(server.handler.to("ok@example.org")) == 1


def test_wrong_password_is_permanent(server: SmtpServer) -> None:
    with pytest.raises(PermanentSendError) as info:
        transport(server, password="wrong").send(
            message("a@example.org"), "t@example.net", ["a@example.org"], handed_over
        )
    assert info.value.code == 535


def test_untrusted_certificate_is_permanent(server: SmtpServer) -> None:
    with pytest.raises(PermanentSendError, match="TLS"):
        transport(server, ca_file=None).send(
            message("a@example.org"), "t@example.net", ["a@example.org"], handed_over
        )


def test_connection_refused_is_transient(server: SmtpServer) -> None:
    with pytest.raises(TransientSendError, match="could not reach"):
        transport(server, port=free_port()).send(
            message("a@example.org"), "t@example.net", ["a@example.org"], handed_over
        )


def test_4xx_after_data_is_transient_and_5xx_permanent(server: SmtpServer) -> None:
    server.handler.replies["busy@example.org"].append("452 4.3.1 Insufficient storage")
    server.handler.replies["spam@example.org"].append("550 5.7.1 No")
    with pytest.raises(TransientSendError) as transient:
        transport(server).send(
            message("busy@example.org"), "t@example.net", ["busy@example.org"], handed_over
        )
    with pytest.raises(PermanentSendError) as permanent:
        transport(server).send(
            message("spam@example.org"), "t@example.net", ["spam@example.org"], handed_over
        )
    assert (transient.value.code, permanent.value.code) == (452, 550)
    assert permanent.value.reply == "5.7.1 No"


def test_nothing_is_sent_when_the_handover_is_refused(server: SmtpServer, tmp_path: Path) -> None:
    with pytest.raises(Superseded):
        transport(server).send(
            message("late@example.org"), "t@example.net", ["late@example.org"], lambda: False
        )
    assert server.handler.to("late@example.org") == []


def test_implicit_tls_on_connect_delivers(tmp_path: Path) -> None:
    with smtp_server(tmp_path, implicit_tls=True) as tls_server:
        reply = transport(tls_server, security="ssl").send(
            message("tls@example.org"), "t@example.net", ["tls@example.org"], handed_over
        )
        assert reply.code == 250
        [received] = tls_server.handler.to("tls@example.org")
        assert received.tls and received.authenticated


def test_a_server_that_never_greets_is_a_transient_timeout(server: SmtpServer) -> None:
    with socket.socket() as silent:
        # Listens, so the TCP connect succeeds, but never says a word.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(TransientSendError, match="could not reach"):
            transport(server, port=silent.getsockname()[1], connect_timeout=0.5).send(
                message("a@example.org"), "t@example.net", ["a@example.org"], handed_over
            )
        assert time.monotonic() - started < 5


def test_no_answer_after_the_message_is_unconfirmed_not_retried(server: SmtpServer) -> None:
    # The server takes the message, then is slower to answer than the send timeout.
    server.handler.on_receive["slow@example.org"] = lambda _message: time.sleep(1.0)
    with pytest.raises(DeliveryUnconfirmed, match="may have been delivered"):
        transport(server, timeout=0.3).send(
            message("slow@example.org"), "t@example.net", ["slow@example.org"], handed_over
        )
    assert len(server.handler.to("slow@example.org")) == 1
