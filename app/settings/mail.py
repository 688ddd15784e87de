"""The mail lane: SMTP delivery (or an .eml outbox folder) and its retry policy."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from app.settings.base import Concern
from app.settings.base import env


class MailSettings(Concern):
    # SMTP server; None writes each mail as an .eml file to MAIL_OUTBOX_DIR instead.
    smtp_host: str | None = env("MAIL_SMTP_HOST")
    # SMTP port: 587 for starttls, 465 for ssl, 25 for none.
    smtp_port: int = env("MAIL_SMTP_PORT", 587, ge=1, le=65535)
    # Transport security: starttls (upgrade after EHLO), ssl (TLS from the start) or none.
    smtp_security: Literal["starttls", "ssl", "none"] = env("MAIL_SMTP_SECURITY", "starttls")
    # SMTP AUTH credentials; AUTH is skipped when no user is set.
    smtp_user: str | None = env("MAIL_SMTP_USER")
    smtp_password: SecretStr | None = env("MAIL_SMTP_PASSWORD")
    # PEM bundle of CAs trusted for the SMTP server's certificate (None: system CAs).
    smtp_ca_file: str | None = env("MAIL_SMTP_CA_FILE")
    # Seconds to open the SMTP connection, and to wait for any later server reply.
    smtp_connect_timeout: float = env("MAIL_SMTP_CONNECT_TIMEOUT", 10.0, gt=0)
    smtp_timeout: float = env("MAIL_SMTP_TIMEOUT", 30.0, gt=0)
    # From address of every mail; its domain also names the Message-IDs.
    from_address: str = env("MAIL_FROM", "Tasklane <tasklane@localhost>")
    # Folder of .eml files used when no SMTP host is set; empty means instance/outbox.
    outbox_dir: str = env("MAIL_OUTBOX_DIR", "")
    # Retry delay after a transient SMTP failure: base doubling per attempt, capped, jittered.
    retry_backoff: float = env("MAIL_RETRY_BACKOFF", 5.0, gt=0)
    retry_backoff_max: float = env("MAIL_RETRY_BACKOFF_MAX", 600.0, gt=0)
