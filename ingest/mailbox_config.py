"""How to reach one rua= mailbox: server, TLS, credentials and the folders the collector uses.

A pydantic model so that the settings (TOML `[[mailboxes]]` tables, or `RUA_IMAP_*` for a
single mailbox) are validated once, with errors naming the field, before any connection.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

TlsMode = Literal["ssl", "starttls", "none"]
DEFAULT_PORTS: dict[str, int] = {"ssl": 993, "starttls": 143, "none": 143}
DEFERRED_KEYWORD = "$RuaDeferred2"
"""Set on messages that hold only reports of a kind Rua cannot parse yet: they stay in the
folder, and later passes skip them instead of fetching them again. Its name changes whenever
a kind becomes parseable, so messages an earlier version set aside are read again
("$RuaDeferred" marked failure and TLS reports before their parsers existed)."""


class MailboxConfig(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(default="", description="A label for logs, metrics and /api/v1/collector; "
                                              "defaults to user@host/folder")
    host: str
    port: int | None = Field(default=None, ge=1, le=65535, description="993 for ssl, else 143")
    tls: TlsMode = Field(default="ssl", description="ssl (implicit TLS), starttls, or none (loopback only)")
    ca_file: Path | None = Field(default=None, description="PEM file of trusted CAs; default: the "
                                                           "system's trust store")
    user: str
    password: SecretStr | None = None
    password_file: Path | None = Field(default=None, description="read at each login, first line")
    folder: str = "INBOX"
    archive: str = "Archive"
    invalid: str = "Invalid"
    batch_size: int = Field(default=100, ge=1, le=10_000, description="messages fetched per round trip")
    poll_interval: float = Field(default=60.0, gt=0, description="seconds between passes without IDLE")
    idle: bool = Field(default=True, description="use IMAP IDLE where the server offers it")
    timeout: float = Field(default=30.0, gt=0, description="seconds before a silent server is an error")
    max_backoff: float = Field(default=300.0, gt=0, description="longest wait between reconnects, seconds")

    @model_validator(mode="after")
    def _check(self) -> MailboxConfig:
        if self.password is None and self.password_file is None:
            raise ValueError(f"mailbox {self.label}: set password or password_file")
        if self.tls == "none" and not _is_loopback(self.host):
            raise ValueError(f"mailbox {self.label}: tls = none is only allowed for a loopback host "
                             f"(got {self.host!r}); use ssl or starttls")
        if len({self.folder, self.archive, self.invalid}) != 3:
            raise ValueError(f"mailbox {self.label}: folder, archive and invalid must be three "
                             "different folders")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.user}@{self.host}/{self.folder}"

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.tls]

    def secret(self) -> str:
        """The password, read from its file on every login so a rotated file is picked up."""
        if self.password_file is not None:
            lines = self.password_file.read_text(encoding="utf-8").splitlines()
            return lines[0] if lines else ""
        assert self.password is not None
        return self.password.get_secret_value()

    def ssl_context(self) -> ssl.SSLContext:
        """Certificates are always verified: against ca_file, or the system's trust store."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
