"""Response models of /api/v1/tls: SMTP TLS reports (RFC 8460) and their totals per domain.

Session counts are the reporter's; `failures` sums the failure details' sessions by result
type, which may add up to less than `failed` (senders need not detail every failure) or,
from some senders, to more (the report's notes say so).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.read_models import Delivery, Page, Window


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


_FAILURES = Field(description="failed sessions by result_type (RFC 8460 §4.3), from the failure details")

_POLICY: dict[str, Any] = {
    "seq": 1, "policy_type": "sts", "policy_domain": "example.com", "mx_hosts": ["*.mail.example.com"],
    "successful": 5326, "failed": 303, "failures": {"certificate-expired": 100, "starttls-not-supported": 200,
                                                    "validation-failure": 3},
}
_POLICY_STRINGS = ["version: STSv1", "mode: testing", "mx: *.mail.example.com", "max_age: 86400"]
_FAILURE: dict[str, Any] = {
    "seq": 1, "result_type": "certificate-expired", "sending_mta_ip": "2001:db8:abcd:12::1",
    "receiving_mx_hostname": "mx1.mail.example.com", "receiving_mx_helo": None, "receiving_ip": None,
    "failed_session_count": 100, "additional_information": None, "failure_reason_code": None,
}
_REPORT: dict[str, Any] = {
    "id": 7, "organization_name": "Google Inc.", "report_id": "2026-11-01T00:00:00Z_example.com",
    "contact_info": "smtp-tls-reporting@google.com", "date_begin": "2026-11-01T00:00:00Z",
    "date_end": "2026-11-01T23:59:59Z", "policy_domains": ["example.com"], "successful": 5326, "failed": 303,
    "failure_rate": 0.053828, "conflict_of_id": None, "notes": [], "ingested_at": "2026-11-02T08:15:00Z",
}


class TlsPolicySummary(BaseModel):
    """One policy of a report and how its sessions went."""

    model_config = _example(_POLICY)

    seq: int = Field(description="position in the report, from 1")
    policy_type: str = Field(description="tlsa, sts or no-policy-found; another value as sent")
    policy_domain: str | None
    mx_hosts: list[str] = Field(description="the MX patterns of the policy, as reported")
    successful: int = Field(description="total-successful-session-count")
    failed: int = Field(description="total-failure-session-count")
    failures: dict[str, int] = _FAILURES


class TlsFailureOut(BaseModel):
    """One failure detail: sessions that failed one way between one sender and one MX."""

    model_config = _example(_FAILURE)

    seq: int = Field(description="position in the policy's failure details, from 1")
    result_type: str = Field(description="an RFC 8460 §4.3 result type, or another value as sent")
    sending_mta_ip: str | None
    receiving_mx_hostname: str | None
    receiving_mx_helo: str | None
    receiving_ip: str | None
    failed_session_count: int
    additional_information: str | None
    failure_reason_code: str | None


class TlsPolicyOut(TlsPolicySummary):
    model_config = _example({**_POLICY, "policy_strings": _POLICY_STRINGS, "failure_details": [_FAILURE]})

    policy_strings: list[str] = Field(description="the policy as the reporter fetched it")
    failure_details: list[TlsFailureOut]


class _TlsReportBase(BaseModel):
    id: int
    organization_name: str = Field(description="the reporter")
    report_id: str = Field(description="the reporter's own id for the report")
    contact_info: str | None
    date_begin: datetime
    date_end: datetime
    policy_domains: list[str] = Field(description="every policy domain of the report")
    successful: int = Field(description="successful sessions, all policies together")
    failed: int = Field(description="failed sessions, all policies together")
    failure_rate: float | None = Field(description="failed / (successful + failed); null without sessions")
    conflict_of_id: int | None = Field(
        description="set on a second copy whose content differs from the first (kept, never merged)")
    notes: list[str] = Field(description="what was wrong with the document and how it was read")
    ingested_at: datetime


class TlsReportItem(_TlsReportBase):
    model_config = _example({**_REPORT, "policies": [_POLICY]})

    policies: list[TlsPolicySummary]


class TlsReportPage(Page[TlsReportItem]):
    model_config = _example({"total": 1, "limit": 100, "offset": 0,
                             "items": [{**_REPORT, "policies": [_POLICY]}]})


class TlsReportDetail(_TlsReportBase):
    model_config = _example({
        **_REPORT,
        "policies": [{**_POLICY, "policy_strings": _POLICY_STRINGS, "failure_details": [_FAILURE]}],
        "deliveries": [{"original_sha256": "9f" * 32, "location": "imap:INBOX#812/report.json.gz",
                        "received_at": "2026-11-02T08:15:00Z", "source": "imap:INBOX#812",
                        "container": "email", "size": 3839}],
    })

    policies: list[TlsPolicyOut] = Field(description="every policy, with every failure detail, in order")
    deliveries: list[Delivery]


_TOTALS: dict[str, Any] = {
    "policy_domain": "example.com", "policy_type": "sts", "reports": 30, "successful": 15200, "failed": 12,
    "failure_rate": 0.000789, "failures": {"certificate-expired": 12},
}


class TlsPolicyTotals(BaseModel):
    """Sessions to one policy domain under one policy type, over the selected reports."""

    model_config = _example(_TOTALS)

    policy_domain: str | None = Field(description="null for policies that named none")
    policy_type: str
    reports: int = Field(description="reports with such a policy (conflicting copies left out)")
    successful: int
    failed: int
    failure_rate: float | None = Field(description="failed / (successful + failed); null without sessions")
    failures: dict[str, int] = _FAILURES


class TlsSummaryOut(BaseModel):
    model_config = _example({
        "window": {"since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "reports": 30,
        "successful": 15200, "failed": 12, "failure_rate": 0.000789, "failures": {"certificate-expired": 12},
        "policies": [_TOTALS]})

    window: Window
    reports: int = Field(description="reports with a matching policy (conflicting copies left out)")
    successful: int
    failed: int
    failure_rate: float | None
    failures: dict[str, int] = _FAILURES
    policies: list[TlsPolicyTotals] = Field(description="by policy domain, then policy type")
