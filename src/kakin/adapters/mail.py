"""Sending e-mail over SMTP: the ``services.mail.Mailer`` port. The outbox (services.mail) decides what to send and when."""

from __future__ import annotations

import os
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage


@dataclass(frozen=True)
class SmtpMailer:
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "billing@localhost"
    timeout: float = 10.0

    @classmethod
    def from_env(cls) -> SmtpMailer:
        """KAKIN_SMTP_HOST, KAKIN_SMTP_PORT and KAKIN_MAIL_FROM (defaults: 127.0.0.1:25, billing@localhost)."""
        return cls(os.environ.get("KAKIN_SMTP_HOST", "127.0.0.1"), int(os.environ.get("KAKIN_SMTP_PORT", "25")),
                   os.environ.get("KAKIN_MAIL_FROM", "billing@localhost"))

    def send(self, message: EmailMessage) -> None:
        if "From" not in message:
            message["From"] = self.sender
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.send_message(message)
