"""The store's tables: what Rua keeps of every input and every aggregate report.

Designed for analytical reads over millions of records: records are keyed by (report,
position) so bulk inserts need no id round-trips, source addresses are also kept as 16 bytes
(IPv4 mapped into IPv6) so CIDR filters are index range scans on SQLite and PostgreSQL alike,
and time and domain filters hit the report table's indexes before touching records.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine
from sqlmodel import Field, SQLModel

JsonColumn: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")


def table_of(model: type[SQLModel]) -> Table:
    """A model's Core table, for the bulk statements and queries that bypass the ORM."""
    return model.__table__  # type: ignore[attr-defined, no-any-return]


class Original(SQLModel, table=True):
    """An input exactly as received, content-addressed; failed ones are the quarantine."""

    __tablename__ = "original"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int = Field(sa_type=BigInteger)
    container: str = Field(max_length=16)
    storage_path: str = Field(max_length=255)
    source: str = Field(max_length=1024, description="file path, upload name or mailbox it came from")
    first_seen_at: datetime
    last_seen_at: datetime
    receipts: int = 1
    status: str = Field(max_length=16, index=True, description="ok, partial, failed or deferred")
    error: str | None = None
    attempts: int = 1
    reports_new: int = 0
    reports_duplicate: int = 0
    reports_failed: int = 0
    reports_deferred: int = 0


class Report(SQLModel, table=True):
    """One aggregate report; identity is (org, report id, policy domain, begin, end)."""

    __tablename__ = "aggregate_report"
    __table_args__ = (
        UniqueConstraint("identity_hash", "content_digest", name="uq_report_identity_content"),
        Index("ix_report_domain_begin", "policy_domain", "date_begin"),
        Index("ix_report_begin_end", "date_begin", "date_end"),
        Index("ix_report_org", "org_name_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    identity_hash: str = Field(max_length=64, index=True)
    content_digest: str | None = Field(default=None, max_length=64)
    org_name: str | None = None
    org_name_key: str | None = Field(default=None, description="case- and space-folded org_name")
    email: str | None = None
    extra_contact_info: str | None = None
    report_id: str | None = None
    policy_domain: str | None = Field(default=None, max_length=255)
    date_begin: datetime | None = None
    date_end: datetime | None = None
    errors: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    generator: str | None = None
    version: str | None = None
    xml_namespace: str | None = None
    adkim: str | None = Field(default=None, max_length=8)
    aspf: str | None = Field(default=None, max_length=8)
    p: str | None = Field(default=None, max_length=16)
    sp: str | None = Field(default=None, max_length=16)
    np: str | None = Field(default=None, max_length=16)
    pct: int | None = None
    fo: str | None = None
    testing: str | None = Field(default=None, max_length=8)
    discovery_method: str | None = Field(default=None, max_length=16)
    record_count: int = 0
    message_count: int = Field(default=0, sa_type=BigInteger)
    repair_notes: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    conflict_of_id: int | None = Field(default=None, foreign_key="aggregate_report.id",
                                       description="set on a copy whose content differs from the first")
    original_sha256: str = Field(foreign_key="original.sha256", max_length=64)
    location: str = Field(description="where in the input the report was found")
    ingested_at: datetime
    verdicts_at: datetime | None = Field(default=None, index=True,
                                         description="when its records were last judged; None: due")


class ReportOrigin(SQLModel, table=True):
    """Every input a report arrived in: the first, and each duplicate delivery."""

    __tablename__ = "report_origin"

    report_id: int = Field(foreign_key="aggregate_report.id", primary_key=True, ondelete="CASCADE")
    original_sha256: str = Field(foreign_key="original.sha256", primary_key=True, max_length=64)
    location: str = Field(primary_key=True, max_length=1024)
    received_at: datetime


class Record(SQLModel, table=True):
    """One `<record>` row, with its policy evaluation and identifiers."""

    __tablename__ = "aggregate_record"
    __table_args__ = (
        Index("ix_record_source_ip", "source_ip_packed"),
        Index("ix_record_header_from", "header_from"),
    )

    report_id: int = Field(foreign_key="aggregate_report.id", primary_key=True, ondelete="CASCADE")
    record_no: int = Field(primary_key=True)
    source_ip: str | None = Field(default=None, max_length=64)
    source_ip_packed: bytes | None = Field(default=None, sa_type=LargeBinary)
    count: int | None = Field(default=None, sa_type=BigInteger)
    disposition: str | None = Field(default=None, max_length=16)
    dkim: str | None = Field(default=None, max_length=8, description="policy_evaluated dkim")
    spf: str | None = Field(default=None, max_length=8, description="policy_evaluated spf")
    header_from: str | None = Field(default=None, max_length=255)
    envelope_from: str | None = Field(default=None, max_length=255)
    envelope_to: str | None = Field(default=None, max_length=255)
    raw_values: dict[str, Any] | None = Field(default=None, sa_column=Column(JsonColumn, nullable=True))


class _RecordPart(SQLModel):
    report_id: int = Field(primary_key=True)
    record_no: int = Field(primary_key=True)
    seq: int = Field(primary_key=True)


def _record_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["report_id", "record_no"],
                                ["aggregate_record.report_id", "aggregate_record.record_no"],
                                ondelete="CASCADE")


class RecordReason(_RecordPart, table=True):
    """A policy override reason (`<reason>`) of a record."""

    __tablename__ = "record_reason"
    __table_args__ = (_record_fk(),)

    type: str | None = Field(default=None, max_length=32)
    comment: str | None = None
    type_raw: str | None = None


class RecordDkimResult(_RecordPart, table=True):
    """One DKIM signature's result as the reporter saw it."""

    __tablename__ = "record_dkim_result"
    __table_args__ = (_record_fk(),)

    domain: str | None = Field(default=None, max_length=255)
    selector: str | None = None
    result: str | None = Field(default=None, max_length=16)
    human_result: str | None = None
    result_raw: str | None = None


class RecordSpfResult(_RecordPart, table=True):
    """One SPF check (mfrom or helo) as the reporter saw it."""

    __tablename__ = "record_spf_result"
    __table_args__ = (_record_fk(),)

    domain: str | None = Field(default=None, max_length=255)
    scope: str | None = Field(default=None, max_length=8)
    result: str | None = Field(default=None, max_length=16)
    human_result: str | None = None
    result_raw: str | None = None


# -- pre-aggregated daily totals --------------------------------------------------------------
#
# What the summary, sources and domains queries read instead of millions of records. A
# report's rows are added when it is stored (in the same transaction), keyed by the first and
# last UTC day its date range touches, so "reports whose range overlaps the window" is a range
# condition on two dates and a multi-day report is still one row, never counted twice. Missing
# values are '' (and undated reports get UNDATED) so the keys can be unique. Conflicting
# copies of a report are kept out: their numbers restate the first copy's.

UNDATED = date(1, 1, 1)
"""first_day and last_day of a report without a (complete) date range: in no window."""


class SourceAddress(SQLModel, table=True):
    """Every source address seen, numbered: totals group by a small integer, not by text.

    Grouping a month of per-day totals by source is the costliest query the API answers
    (tens of thousands of sources); integer keys make it several times cheaper. Each address
    also keeps its lifetime message count and the days it was seen, kept with the daily
    totals: an upper bound on any window's volume and an interval that contains every window
    it appears in, so ranking and counting sources need not group the whole window
    (app.source_ranking).
    """

    __tablename__ = "source_address"
    __table_args__ = (
        Index("ix_source_address_messages", "messages", "id"),
        Index("ix_source_address_days", "last_day", "first_day"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ip: str = Field(max_length=64, unique=True, description="as in aggregate_record.source_ip; '' if none")
    packed: bytes | None = Field(default=None, sa_type=LargeBinary, index=True,
                                 description="16 bytes, IPv4 mapped into IPv6, for CIDR ranges")
    # server defaults: migration 0003 added these to a filled table
    messages: int = Field(default=0, sa_type=BigInteger, description="in every analysed report",
                          sa_column_kwargs={"server_default": "0"})
    first_day: date = Field(default=UNDATED, description="its earliest report's first day",
                            sa_column_kwargs={"server_default": "0001-01-01"})
    last_day: date = Field(default=UNDATED, description="its latest report's last day",
                           sa_column_kwargs={"server_default": "0001-01-01"})
    # who it is (ingest.source_enrichment), filled after ingest; identified_at is NULL until then
    sender: str | None = Field(default=None, max_length=255,
                               description="catalogue service, else PTR base domain, else AS name, "
                                           "else unknown")
    service: str | None = Field(default=None, max_length=128, description="catalogue service name")
    service_type: str | None = Field(default=None, max_length=24, description="catalogue service type")
    matched_by: str | None = Field(default=None, max_length=24, description="the catalogue rule that matched")
    ptr: str | None = Field(default=None, max_length=255, description="reverse DNS name")
    reverse_dns: str | None = Field(default=None, max_length=16,
                                    description="confirmed, unconfirmed, no_ptr or temperror")
    base_domain: str | None = Field(default=None, max_length=255,
                                    description="the PTR name's registrable domain")
    asn: int | None = Field(default=None, description="autonomous system number")
    as_name: str | None = Field(default=None, max_length=255)
    country: str | None = Field(default=None, max_length=2, description="ISO 3166 code")
    identified_at: datetime | None = Field(default=None, index=True)


class _DailyTotals(SQLModel):
    id: int | None = Field(default=None, primary_key=True)
    first_day: date
    last_day: date
    policy_domain: str = Field(default="", max_length=255)
    disposition: str = Field(default="", max_length=16)
    dmarc: str = Field(max_length=4, description="pass when the reporter saw aligned SPF or DKIM pass")
    messages: int = Field(default=0, sa_type=BigInteger)
    records: int = Field(default=0, sa_type=BigInteger)
    spf_aligned_pass: int = Field(default=0, sa_type=BigInteger, description="messages")
    dkim_aligned_pass: int = Field(default=0, sa_type=BigInteger, description="messages")


class DailyTotals(_DailyTotals, table=True):
    """Messages per (report days, policy domain, reporter, disposition, DMARC result)."""

    __tablename__ = "daily_totals"
    __table_args__ = (
        # its leading first_day serves "first_day < until"; the index below "last_day >= since"
        UniqueConstraint("first_day", "last_day", "policy_domain", "org_name_key", "disposition", "dmarc",
                         name="uq_daily_totals_key"),
        Index("ix_daily_totals_last_day", "last_day"),
    )

    org_name_key: str = Field(default="")


class DailySourceTotals(_DailyTotals, table=True):
    """Messages per (report days, policy domain, source address, disposition, DMARC result)."""

    __tablename__ = "daily_source_totals"
    __table_args__ = (
        UniqueConstraint("first_day", "last_day", "policy_domain", "source_id", "disposition", "dmarc",
                         name="uq_daily_source_totals_key"),
        # covers the ranking of sources over a window without reading the table
        Index("ix_daily_source_totals_window", "last_day", "first_day", "policy_domain", "source_id",
              "messages"),
        Index("ix_daily_source_totals_source", "source_id", "last_day"),
    )

    source_id: int = Field(foreign_key="source_address.id")


# -- who may use the API ----------------------------------------------------------------------

class ApiToken(SQLModel, table=True):
    """A bearer token for scripts; only its SHA-256 is kept (tokens are 256 random bits)."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    scope: str = Field(max_length=16, description="ingest, read or admin")
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16, description="the token's first characters, to recognise it")
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class DashboardUser(SQLModel, table=True):
    """A person who signs in to the dashboard; the password is kept as an argon2id hash."""

    __tablename__ = "dashboard_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=128, unique=True)
    password_hash: str = Field(max_length=255)
    created_at: datetime
    password_changed_at: datetime
    disabled: bool = False


class DashboardSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token of which only the SHA-256 is kept,
    so a copy of the database signs nobody in; deleting the row signs the browser out."""

    __tablename__ = "dashboard_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="dashboard_user.id", index=True, ondelete="CASCADE")
    csrf_token: str = Field(max_length=64, description="must come back with every form the session posts")
    created_at: datetime
    expires_at: datetime


# -- the IMAP collector ------------------------------------------------------------------------

class CollectorMailbox(SQLModel, table=True):
    """Each configured mailbox's collector state, written by whichever process collects
    (`rua serve`, `rua collect`, `rua poll`), read by /api/v1/collector and /metrics."""

    __tablename__ = "collector_mailbox"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=255, unique=True)
    state: str = Field(max_length=16, description="connecting, draining, idle, waiting, backoff, stopped")
    updated_at: datetime
    last_success_at: datetime | None = Field(default=None, description="end of the last complete pass")
    last_error: str | None = Field(default=None, max_length=2000)
    last_error_reason: str | None = Field(default=None, max_length=32)
    last_error_at: datetime | None = None
    next_attempt_at: datetime | None = None
    backlog: int | None = Field(default=None, description="messages waiting at the last look")
    ingested: int = Field(default=0, sa_type=BigInteger, description="messages archived: stored or known")
    invalid: int = Field(default=0, sa_type=BigInteger, description="messages moved to the invalid folder")
    deferred: int = Field(default=0, sa_type=BigInteger, description="failure/TLS-only messages, left")


# -- DNS history and recomputed verdicts -------------------------------------------------------

class DnsSnapshot(SQLModel, table=True):
    """One validity interval of one (name, type): see ingest.dns_history for the rules."""

    __tablename__ = "dns_snapshot"
    __table_args__ = (Index("ix_dns_snapshot_name", "name", "rdtype", "first_seen"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=255)
    rdtype: str = Field(max_length=8)
    outcome: str = Field(max_length=16, description="answer, nxdomain, nodata, servfail or timeout")
    records: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    ttl: int | None = None
    first_seen: datetime
    last_seen: datetime
    checks: int = Field(default=1, description="how many lookups gave this same answer")


# the tables of the other report kinds, and the judge's, live in modules of their own; importing
# them here registers them on the metadata that Alembic and the tests read
from app import failure_models as failure_models  # noqa: E402
from app import tls_models as tls_models  # noqa: E402
from app.verdict_models import RecordVerdict as RecordVerdict  # noqa: E402
from app.verdict_models import ReportClassTotals as ReportClassTotals  # noqa: E402
from app.verdict_models import ReportSourceClasses as ReportSourceClasses  # noqa: E402
