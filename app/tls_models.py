"""Tables of SMTP TLS reports (RFC 8460), filled by ingest.tls_store.

A report's identity is (folded organization-name, report-id), as RFC 8460 §4.4 makes the
report-id unique per sender; `content_digest` tells a re-delivery (stored once) from a
re-issue with other numbers (kept beside the first as a flagged conflicting copy). The
unique pair makes "stored once" hold even if two writers race past the identity lock.
Free-text columns (policy types, hostnames, failure texts) come from strangers and have no
length limit, so no report can fail on a database-specific size error; only indexed
columns are bounded, and the parser guarantees their limits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKeyConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models import JsonColumn


class TlsReportRow(SQLModel, table=True):
    """One TLS report, with its totals, so lists need not read its policies."""

    __tablename__ = "tls_report"
    __table_args__ = (
        UniqueConstraint("identity_hash", "content_digest", name="uq_tls_report_identity_content"),
        Index("ix_tls_report_begin_end", "date_begin", "date_end"),
        Index("ix_tls_report_organization", "organization_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    identity_hash: str = Field(max_length=64, index=True)
    content_digest: str = Field(max_length=64, description="of the parsed content, order-insensitive")
    organization_name: str
    organization_key: str = Field(max_length=255,
                                  description="case- and space-folded organization_name, cut at 255")
    report_id: str
    contact_info: str | None = None
    date_begin: datetime
    date_end: datetime
    policy_domains: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    policy_count: int = 0
    successful: int = Field(default=0, sa_type=BigInteger, description="sessions, all policies together")
    failed: int = Field(default=0, sa_type=BigInteger, description="sessions, all policies together")
    notes: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    conflict_of_id: int | None = Field(default=None, foreign_key="tls_report.id",
                                       description="set on a copy whose content differs from the first")
    original_sha256: str = Field(foreign_key="original.sha256", max_length=64)
    location: str = Field(description="where in the input the report was found")
    ingested_at: datetime


class TlsReportOrigin(SQLModel, table=True):
    """Every input a TLS report arrived in: the first, and each duplicate delivery."""

    __tablename__ = "tls_report_origin"

    report_id: int = Field(foreign_key="tls_report.id", primary_key=True, ondelete="CASCADE")
    original_sha256: str = Field(foreign_key="original.sha256", primary_key=True, max_length=64)
    location: str = Field(primary_key=True, max_length=1024)
    received_at: datetime


class TlsPolicyRow(SQLModel, table=True):
    """One `policies` entry of a report, numbered from 1 in the report's order."""

    __tablename__ = "tls_policy"
    __table_args__ = (Index("ix_tls_policy_domain", "policy_domain", "report_id"),)

    report_id: int = Field(foreign_key="tls_report.id", primary_key=True, ondelete="CASCADE")
    seq: int = Field(primary_key=True)
    policy_type: str = Field(description="tlsa, sts, no-policy-found, or another value as sent")
    policy_domain: str | None = Field(default=None, max_length=255)
    policy_strings: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    mx_hosts: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    successful: int = Field(default=0, sa_type=BigInteger)
    failed: int = Field(default=0, sa_type=BigInteger)


class TlsFailureRow(SQLModel, table=True):
    """One `failure-details` entry of a policy, numbered from 1 within it."""

    __tablename__ = "tls_failure"
    __table_args__ = (
        ForeignKeyConstraint(["report_id", "policy_seq"], ["tls_policy.report_id", "tls_policy.seq"],
                             ondelete="CASCADE"),
    )

    report_id: int = Field(primary_key=True)
    policy_seq: int = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    result_type: str = Field(description="an RFC 8460 §4.3 result type, or another value as sent")
    sending_mta_ip: str | None = None
    receiving_mx_hostname: str | None = None
    receiving_mx_helo: str | None = None
    receiving_ip: str | None = None
    failed_session_count: int = Field(default=0, sa_type=BigInteger)
    additional_information: str | None = None
    failure_reason_code: str | None = None
