"""All of Rua's settings, read once from `RUA_*` variables and an optional TOML file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.dns_resolver import LiveResolver, parse_nameservers
from ingest.ingest_workers import IngestWorkers
from ingest.limits import UnpackLimits
from ingest.mailbox_config import MailboxConfig, TlsMode
from ingest.sender_catalogue import SenderCatalogue

_DEFAULTS = UnpackLimits()


class Settings(BaseSettings):
    """Environment variables win over the TOML file named by `RUA_CONFIG`, which wins over defaults."""

    model_config = SettingsConfigDict(env_prefix="RUA_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./rua.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user:pw@host/db")
    data_dir: Path = Field(default=Path("./rua-data"),
                           description="Where original inputs (and so quarantined ones) are kept")
    max_input_bytes: int = Field(default=_DEFAULTS.max_input_bytes, gt=0)
    max_message_bytes: int = Field(default=_DEFAULTS.max_message_bytes, gt=0)
    max_decompressed_bytes: int = Field(default=_DEFAULTS.max_decompressed_bytes, gt=0)
    max_compression_ratio: int = Field(default=_DEFAULTS.max_compression_ratio, gt=1)
    max_nesting_depth: int = Field(default=_DEFAULTS.max_nesting_depth, ge=1)
    max_members: int = Field(default=_DEFAULTS.max_members, ge=1)
    max_mbox_messages: int = Field(default=_DEFAULTS.max_mbox_messages, ge=1)
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024, gt=0,
        description="Largest HTTP upload body; larger ones get 413 before they are read in full")
    public_metrics: bool = Field(default=True, description="Serve /metrics without a token")
    public_docs: bool = Field(
        default=False, description="Serve /docs and /openapi.json without a token (trusted networks)")
    # -- the dashboard
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30,
                                 description="how long a dashboard sign-in lasts")
    secure_cookies: bool = Field(
        default=False, description="mark the session cookie Secure even when the request looks like plain "
                                   "HTTP (behind a TLS-terminating proxy that does not say so)")
    report_address: str = Field(
        default="", description="the address reports are sent to (the `rua=` of the DMARC record), shown "
                                "in the dashboard's set-up help; default: the first mailbox's user when it "
                                "is an address")
    # -- the IMAP collector: any number of [[mailboxes]] in the TOML file, and/or one mailbox
    # set entirely from RUA_IMAP_* variables
    mailboxes: list[MailboxConfig] = Field(default_factory=list,
                                           description="[[mailboxes]] tables: see ingest.mailbox_config")
    imap_host: str | None = Field(default=None, description="one mailbox from the environment: its server")
    imap_port: int | None = Field(default=None, ge=1, le=65535)
    imap_tls: TlsMode = "ssl"
    imap_ca_file: Path | None = None
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_password_file: Path | None = None
    imap_folder: str = "INBOX"
    imap_archive: str = "Archive"
    imap_invalid: str = "Invalid"
    imap_batch_size: int = Field(default=100, ge=1, le=10_000)
    imap_poll_interval: float = Field(default=60.0, gt=0)
    imap_idle: bool = True
    collector_workers: int = Field(
        default=0, ge=0, le=32,
        description="processes that ingest a mailbox backlog in parallel; 0: one per core (at most 4), "
                    "1: none, in the collector's own process")
    collect_in_serve: bool = Field(
        default=True, description="rua serve also runs the collector (turn off when `rua collect` runs)")
    # -- DNS: snapshots of the records live now, the history recomputation judges against
    dns_nameservers: str = Field(
        default="", description="comma-separated `host` or `host:port` ([v6]:port); empty: the system's")
    dns_timeout: float = Field(default=2.0, gt=0, description="seconds for one attempt at one server")
    dns_lifetime: float = Field(default=5.0, gt=0, description="seconds for a whole query, retries included")
    dns_snapshot_interval: float = Field(
        default=6 * 3600.0, ge=60, description="seconds between snapshots of a known domain (6 hours)")
    dns_in_serve: bool = Field(
        default=True, description="rua serve also snapshots DNS and judges new records in the background")
    domains: str | list[str] = Field(
        default="", description="domains to snapshot besides those seen in reports: comma-separated, "
                                 "or a list in the TOML file")
    senders_file: Path | None = Field(
        default=None, description="a TOML file of sender catalogue entries, added to the shipped catalogue "
                                  "(an entry with a shipped entry's name replaces it)")
    redact_local_parts: bool = Field(
        default=False, description="failure reports: store addresses as `redacted@domain` (the domain "
                                   "is kept for analysis); message bodies are never stored")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, for log collectors")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get("RUA_CONFIG")
        if config:
            if not Path(config).is_file():
                raise ValueError(f"RUA_CONFIG names {config!r}, which is not a readable file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    @model_validator(mode="after")
    def _check_mailboxes(self) -> Settings:
        self.all_mailboxes()  # a wrong mailbox is a settings error at start, not at first use
        return self

    def all_mailboxes(self) -> list[MailboxConfig]:
        """The [[mailboxes]] tables, then the one RUA_IMAP_HOST describes, if set."""
        mailboxes = list(self.mailboxes)
        if self.imap_host:
            if not self.imap_user:
                raise ValueError("RUA_IMAP_HOST is set but RUA_IMAP_USER is not")
            mailboxes.append(MailboxConfig(
                host=self.imap_host, port=self.imap_port, tls=self.imap_tls, ca_file=self.imap_ca_file,
                user=self.imap_user, password=self.imap_password, password_file=self.imap_password_file,
                folder=self.imap_folder, archive=self.imap_archive, invalid=self.imap_invalid,
                batch_size=self.imap_batch_size, poll_interval=self.imap_poll_interval, idle=self.imap_idle))
        names = [mailbox.label for mailbox in mailboxes]
        if len(set(names)) != len(names):
            raise ValueError(f"two mailboxes share a name: {names}; give each a distinct `name`")
        return mailboxes

    def ingest_workers(self) -> IngestWorkers | None:
        """The collector's worker processes (started on first use), or None for in-process."""
        count = self.collector_workers or min(4, os.cpu_count() or 1)
        if count < 2:
            return None
        return IngestWorkers(self.database_url, self.data_dir, self.unpack_limits, count,
                             self.redact_local_parts)

    @model_validator(mode="after")
    def _check_dns(self) -> Settings:
        self.nameservers()  # a mistyped server is a settings error at start
        if self.senders_file is not None:
            self.sender_catalogue()  # and so is a broken catalogue file
        return self

    def nameservers(self) -> list[str]:
        return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                for host, port in parse_nameservers(self.dns_nameservers)]

    def configured_domains(self) -> list[str]:
        items = self.domains.split(",") if isinstance(self.domains, str) else self.domains
        return sorted({item.strip().lower().rstrip(".") for item in items if item.strip()})

    def reporting_address(self) -> str | None:
        """Where reports go, for the set-up help: as configured, else a mailbox user that is an
        address; None when neither says."""
        if self.report_address.strip():
            return self.report_address.strip()
        return next((box.user for box in self.all_mailboxes() if "@" in box.user), None)

    def sender_catalogue(self) -> SenderCatalogue:
        return SenderCatalogue.load(self.senders_file)

    def live_resolver(self) -> LiveResolver:
        return LiveResolver(self.nameservers() or None, timeout=self.dns_timeout, lifetime=self.dns_lifetime)

    @property
    def unpack_limits(self) -> UnpackLimits:
        return UnpackLimits(
            max_input_bytes=self.max_input_bytes,
            max_message_bytes=self.max_message_bytes,
            max_decompressed_bytes=self.max_decompressed_bytes,
            max_compression_ratio=self.max_compression_ratio,
            max_nesting_depth=self.max_nesting_depth,
            max_members=self.max_members,
            max_mbox_messages=self.max_mbox_messages,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
