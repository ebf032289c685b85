"""Tables of failure reports (filled by the failure report store, ingest.failure_store).

One row per report: a failure report describes one message, so its fields are columns and
its lists (Auth-Failure values, recipients, the original's headers) are JSON. The columns the
list filters by (arrival day, reported domain, source address) are indexed; the source is also
kept as 16 bytes like aggregate_record.source_ip_packed, so linking a failure to aggregate
records of the same source and CIDR filters are both index range scans.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from app.models import JsonColumn


class FailureReport(SQLModel, table=True):
    """One failure (ruf) report, ARF or a plain-text notice read best-effort (`format`)."""

    __tablename__ = "failure_report"
    __table_args__ = (
        Index("ix_failure_report_day", "arrival_day", "arrival_date"),
        Index("ix_failure_report_domain_day", "reported_domain", "arrival_day"),
        Index("ix_failure_report_source_ip", "source_ip_packed"),
    )

    id: int | None = Field(default=None, primary_key=True)
    content_digest: str = Field(max_length=64, unique=True,
                                description="SHA-256 of the stored content: one row per report")
    format: str = Field(max_length=8, description="arf, or non_arf for a plain-text notice")
    feedback_type: str | None = Field(default=None, max_length=64)
    version: str | None = Field(default=None, max_length=32)
    user_agent: str | None = None
    auth_failure: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    identity_alignment: Any = Field(default=None, sa_column=Column(JsonColumn, nullable=True),
                                    description='a list of "dkim"/"spf", "none", or null when unsaid')
    source_ip: str | None = Field(default=None, max_length=64)
    source_ip_packed: bytes | None = Field(default=None, sa_type=LargeBinary)
    source_port: int | None = None
    reported_domain: str | None = Field(default=None, max_length=255, description="lower-case")
    reported_uri: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    original_mail_from: str | None = None
    original_rcpt_to: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    original_envelope_id: str | None = None
    arrival_date: datetime | None = None
    arrival_date_source: str | None = Field(default=None, max_length=16)
    arrival_day: date | None = Field(default=None, description="UTC day of arrival_date")
    reporting_mta: str | None = None
    incidents: int | None = None
    delivery_result: str | None = Field(default=None, max_length=32)
    dkim_domain: str | None = Field(default=None, max_length=255)
    dkim_selector: str | None = None
    dkim_identity: str | None = None
    dkim_canonicalized_header: bool = False
    dkim_canonicalized_body: bool = False
    dkim_adsp_dns: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    spf_dns: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    authentication_results: list[str] = Field(default_factory=list,
                                              sa_column=Column(JsonColumn, nullable=False))
    other_fields: list[list[str]] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    report_from: str | None = None
    report_subject: str | None = None
    report_date: datetime | None = None
    report_message_id: str | None = None
    original_headers: list[list[str]] = Field(default_factory=list,
                                              sa_column=Column(JsonColumn, nullable=False))
    original_headers_source: str | None = Field(default=None, max_length=32)
    original_from: str | None = None
    original_to: str | None = None
    original_subject: str | None = None
    original_message_id: str | None = None
    original_date: datetime | None = None
    header_from: str | None = Field(default=None, max_length=255, description="domain of the original From")
    text: str | None = None
    redacted: bool = False
    notes: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    original_sha256: str = Field(foreign_key="original.sha256", max_length=64, ondelete="CASCADE")
    location: str = Field(max_length=1024, description="where in the input the report was found")
    stored_at: datetime
