"""The judge's tables (ingest.recompute): its verdict on each record, and the per-report
totals by class and by (source address, class) that the summaries and sender pages read.

Kept apart from app.models, which re-exports them, as the failure and TLS tables are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, text
from sqlmodel import Field, SQLModel

from app.models import JsonColumn


class RecordVerdict(SQLModel, table=True):
    """Rua's own verdict on a record, against the DNS of the report's dates, beside the
    reporter's; rewritten whenever the record is recomputed.

    Keyed by its record's (report_id, record_no) without a foreign key, as are the judge's
    per-address rows (ReportSourceClasses): a key made the database check each of the
    million rows a recomputation writes, more than half of PostgreSQL's cost of writing one
    (migration 0012). The judge checks each batch's reports instead, in the transaction that
    writes the batch; Rua never deletes a report, record or address, and anything that ever
    does must delete these rows too."""

    __tablename__ = "record_verdict"

    report_id: int = Field(primary_key=True)
    record_no: int = Field(primary_key=True)
    record_class: str = Field(max_length=24, description="aligned, forwarded, forwarding_failure, "
                                                         "misconfigured or unauthorised")
    dmarc: str = Field(max_length=16, description="pass, fail or temperror, recomputed")
    spf_aligned: bool = Field(description="an SPF pass for a domain aligned with header_from")
    dkim_aligned: bool = Field(description="a DKIM pass for a domain aligned with header_from")
    spf_result: str | None = Field(default=None, max_length=16,
                                   description="source_ip against the envelope domain's SPF, from snapshots")
    own_spf_result: str | None = Field(default=None, max_length=16,
                                       description="source_ip against the header_from domain's SPF")
    dkim: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JsonColumn, nullable=False))
    org_domain: str | None = Field(default=None, max_length=255)
    discovery_method: str = Field(max_length=16, description="psl or treewalk")
    dns_as_of: datetime = Field(description="the instant whose DNS the record was judged against")
    computed_at: datetime


class ReportClassTotals(SQLModel, table=True):
    """Messages and records of each class in a report, written with its verdicts, so summaries
    by class read a few rows per report instead of every record."""

    __tablename__ = "report_class_totals"

    report_id: int = Field(foreign_key="aggregate_report.id", primary_key=True, ondelete="CASCADE")
    record_class: str = Field(max_length=24, primary_key=True)
    messages: int = Field(default=0, sa_type=BigInteger)
    records: int = 0




class ReportSourceClasses(SQLModel, table=True):
    """Messages of each (source address, class) in a report, written with its verdicts, so the
    pages that group classes by sender read one narrow row per address and report instead of
    every record with its verdict. `broken_domain` is the d= of a signature of the domain's
    own broken in transit (see app.forwarding_query.broken_signatures), else empty.

    Keyed by the address's id, not its text, and (on SQLite) stored in key order: the pages
    read every row of the window's reports and join each to its address, and an integer key
    read in place is several times cheaper there than a string looked up through an index.

    Each row also keeps its address's group and identity as they were when it was judged
    (ingest.address_group), so the forwarding page ranks a month of rows by sender without
    looking each address up. A row judged before its address was identified has none (NULL)
    until ingest.address_group fills it; the partial index holds exactly those rows, usually
    none. An address whose identity changes has its reports judged again."""

    __tablename__ = "report_source_classes"
    __table_args__ = (
        Index("ix_report_source_classes_ungrouped", "report_id", "source_id",
              sqlite_where=text("group_key IS NULL"), postgresql_where=text("group_key IS NULL")),
        {"sqlite_with_rowid": False},
    )

    # no foreign keys: see RecordVerdict
    report_id: int = Field(primary_key=True, description="aggregate_report.id")
    source_id: int = Field(primary_key=True, description="source_address.id")
    record_class: str = Field(max_length=24, primary_key=True)
    broken_domain: str = Field(max_length=255, primary_key=True, default="")
    messages: int = Field(default=0, sa_type=BigInteger)
    records: int = 0
    dmarc_pass: int = Field(default=0, sa_type=BigInteger, description="messages the receiver passed")
    group_key: str | None = Field(default=None, max_length=255,
                                  description="the sender identification named, else the address")
    keyed_by: str | None = Field(default=None, max_length=8, description="sender or ip")
    sender: str | None = Field(default=None, max_length=255)
    service: str | None = Field(default=None, max_length=128)
    service_type: str | None = Field(default=None, max_length=24)
