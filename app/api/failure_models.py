"""What the failure report API answers: the list items, one report in full, its linked records.

Every model carries an example so the OpenAPI document shows a real-looking answer; the
field descriptions say where each value came from in the report (ARF field names).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.read_models import Page


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


FAILURE_EXAMPLE: dict[str, Any] = {
    "id": 7, "format": "arf", "arrival_date": "2026-11-01T09:12:44Z", "arrival_day": "2026-11-01",
    "arrival_date_source": "Arrival-Date", "reported_domain": "example.com", "header_from": "example.com",
    "source_ip": "192.0.2.10", "auth_failure": ["dmarc"], "identity_alignment": "none",
    "delivery_result": "reject", "original_mail_from": "bounce@mailer.example.net",
    "original_rcpt_to": ["someone@receiver.example"], "original_from": "Billing <billing@example.com>",
    "original_subject": "Your invoice", "report_from": "dmarc-noreply@receiver.example",
    "user_agent": "ReceiverMTA/2.1", "redacted": False, "stored_at": "2026-11-01T09:20:00Z",
    "notes": ["the feedback-report part lacks Identity-Alignment"],
}

LINKED_EXAMPLE: dict[str, Any] = {
    "report_id": 42, "record_no": 3, "org_name": "receiver.example", "begin": "2026-11-01T00:00:00Z",
    "end": "2026-11-01T23:59:59Z", "count": 12, "disposition": "reject", "dkim": "fail", "spf": "fail",
    "header_from": "example.com", "policy_domain": "example.com",
}


class FailureSummary(BaseModel):
    """One failure report as listed: what failed, for which domain, from where, when."""

    model_config = _example(FAILURE_EXAMPLE)

    id: int
    format: Literal["arf", "non_arf"] = Field(
        description="arf, or non_arf for a plain-text notice read best-effort (see notes)")
    arrival_date: datetime | None
    arrival_day: date | None = Field(description="UTC day of arrival_date")
    arrival_date_source: str | None = Field(
        description="Arrival-Date, Received-Date or 'report Date' (the report e-mail's own Date)")
    reported_domain: str | None = Field(description="Reported-Domain, or derived (see notes)")
    header_from: str | None = Field(description="domain of the original message's From header")
    source_ip: str | None = Field(description="Source-IP, normalised")
    auth_failure: list[str] = Field(
        description="Auth-Failure: adsp, bodyhash, revoked, signature, spf, dmarc")
    identity_alignment: list[str] | Literal["none"] | None = Field(
        description="Identity-Alignment: the aligned identifiers, none, or null when not reported")
    delivery_result: str | None
    original_mail_from: str | None = Field(description="Original-Mail-From; <> is the null reverse-path")
    original_rcpt_to: list[str]
    original_from: str | None = Field(description="the original message's From header")
    original_subject: str | None
    report_from: str | None = Field(description="the reporter: From of the report e-mail")
    user_agent: str | None
    redacted: bool = Field(description="local parts of addresses were replaced by 'redacted' on ingest")
    stored_at: datetime
    notes: list[str] = Field(description="what was missing, derived or repaired while reading the report")


class FailurePage(Page[FailureSummary]):
    model_config = _example({"total": 1, "limit": 100, "offset": 0, "items": [FAILURE_EXAMPLE]})


class HeaderField(BaseModel):
    model_config = _example({"name": "Subject", "value": "Your invoice"})

    name: str
    value: str


class OtherField(HeaderField):
    """A feedback field (or notice line) that is not an ARF field."""


class LinkedRecord(BaseModel):
    """An aggregate record of the same source, domain and day: the traffic this message was part of."""

    model_config = _example(LINKED_EXAMPLE)

    report_id: int = Field(description="Rua's id of the aggregate report")
    record_no: int
    org_name: str | None = Field(description="the aggregate report's reporter")
    begin: datetime | None
    end: datetime | None
    count: int | None = Field(description="messages the record stands for")
    disposition: str | None
    dkim: str | None = Field(description="aligned DKIM result as the receiver evaluated it")
    spf: str | None = Field(description="aligned SPF result as the receiver evaluated it")
    header_from: str | None
    policy_domain: str | None


class FailureDetail(FailureSummary):
    """One failure report with every field, the original's headers (never its body) and the
    aggregate records it links to."""

    model_config = _example({
        **FAILURE_EXAMPLE, "feedback_type": "auth-failure", "version": "1", "source_port": None,
        "reported_uri": [], "original_envelope_id": None, "reporting_mta": "dns; mx.receiver.example",
        "incidents": None, "dkim_domain": "example.com", "dkim_selector": "s1",
        "dkim_identity": "@example.com", "dkim_canonicalized_header": False,
        "dkim_canonicalized_body": False, "dkim_adsp_dns": [], "spf_dns": [],
        "authentication_results": ["mx.receiver.example; dmarc=fail header.from=example.com"],
        "other_fields": [], "report_subject": "DMARC failure report for example.com",
        "report_date": "2026-11-01T09:13:00Z", "report_message_id": "<r1@receiver.example>",
        "original_headers": [{"name": "From", "value": "Billing <billing@example.com>"},
                             {"name": "Subject", "value": "Your invoice"}],
        "original_headers_source": "message/rfc822", "original_to": "someone@receiver.example",
        "original_message_id": "<m1@example.com>", "original_date": "2026-11-01T09:12:40Z",
        "text": "This is an authentication failure report.", "original_sha256": "9f" * 32,
        "location": "upload:failure.eml", "linked_records": [LINKED_EXAMPLE],
    })

    feedback_type: str | None
    version: str | None
    source_port: int | None
    reported_uri: list[str]
    original_envelope_id: str | None
    reporting_mta: str | None
    incidents: int | None
    dkim_domain: str | None
    dkim_selector: str | None
    dkim_identity: str | None
    dkim_canonicalized_header: bool = Field(description="whether the report carried one (never kept)")
    dkim_canonicalized_body: bool = Field(description="whether the report carried one (never kept)")
    dkim_adsp_dns: list[str]
    spf_dns: list[str]
    authentication_results: list[str]
    other_fields: list[OtherField]
    report_subject: str | None
    report_date: datetime | None
    report_message_id: str | None
    original_headers: list[HeaderField] = Field(description="the original message's headers, in order")
    original_headers_source: str | None = Field(
        description="message/rfc822, text/rfc822-headers, or text (copied into a notice)")
    original_to: str | None
    original_message_id: str | None
    original_date: datetime | None
    text: str | None = Field(description="the report's human-readable part")
    original_sha256: str = Field(description="the input it came in (see the stored originals)")
    location: str = Field(description="where in the input the report was found")
    linked_records: list[LinkedRecord] = Field(
        description="aggregate records of the same source address and domain (header_from or policy "
                    "domain) from reports whose period overlaps the arrival day; at most 200")
