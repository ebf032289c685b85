"""Builders for the project's own report fixtures, one per real-world quirk.

Fixtures are made here in code rather than committed as opaque blobs, so each test shows
exactly which quirk it exercises (see ../shared/STANDARDS.md §7).
"""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

DMARC2_NS = "urn:ietf:params:xml:ns:dmarc-2.0"
DRAFT_NS = "http://dmarc.org/dmarc-xml/0.1"


@dataclass
class Rec:
    """One record of a report being built; texts are written as given (quirks included)."""

    source_ip: str = "192.0.2.1"
    count: str = "1"
    disposition: str = "none"
    dkim: str = "pass"
    spf: str = "pass"
    header_from: str = "example.com"
    envelope_from: str | None = "example.com"
    envelope_to: str | None = None
    reasons: list[tuple[str, str | None]] = field(default_factory=list)
    dkim_results: list[tuple[str, str | None, str]] = field(
        default_factory=lambda: [("example.com", "s1", "pass")])
    spf_results: list[tuple[str, str | None, str]] = field(
        default_factory=lambda: [("example.com", "mfrom", "pass")])

    def xml(self, p: str = "") -> str:
        reasons = "".join(
            f"<{p}reason><{p}type>{kind}</{p}type>"
            + (f"<{p}comment>{comment}</{p}comment>" if comment is not None else "")
            + f"</{p}reason>" for kind, comment in self.reasons)
        envelope_from = ("" if self.envelope_from is None
                         else f"<{p}envelope_from>{self.envelope_from}</{p}envelope_from>")
        envelope_to = ("" if self.envelope_to is None
                       else f"<{p}envelope_to>{self.envelope_to}</{p}envelope_to>")
        dkim = "".join(
            f"<{p}dkim><{p}domain>{d}</{p}domain>"
            + (f"<{p}selector>{s}</{p}selector>" if s is not None else "")
            + f"<{p}result>{r}</{p}result></{p}dkim>" for d, s, r in self.dkim_results)
        spf = "".join(
            f"<{p}spf><{p}domain>{d}</{p}domain>"
            + (f"<{p}scope>{s}</{p}scope>" if s is not None else "")
            + f"<{p}result>{r}</{p}result></{p}spf>" for d, s, r in self.spf_results)
        return (f"<{p}record><{p}row><{p}source_ip>{self.source_ip}</{p}source_ip>"
                f"<{p}count>{self.count}</{p}count><{p}policy_evaluated>"
                f"<{p}disposition>{self.disposition}</{p}disposition><{p}dkim>{self.dkim}</{p}dkim>"
                f"<{p}spf>{self.spf}</{p}spf>{reasons}</{p}policy_evaluated></{p}row>"
                f"<{p}identifiers>{envelope_to}{envelope_from}"
                f"<{p}header_from>{self.header_from}</{p}header_from></{p}identifiers>"
                f"<{p}auth_results>{dkim}{spf}</{p}auth_results></{p}record>\n")


def aggregate_xml(
    records: list[Rec] | None = None,
    *,
    org_name: str = "receiver.example",
    report_id: str = "report-1",
    domain: str = "example.com",
    begin: str = "1700000000",
    end: str = "1700086399",
    p: str = "reject",
    extra_policy: str = "<pct>100</pct>",
    namespace: str | None = None,
    prefix: str | None = None,
    declaration: str = '<?xml version="1.0" encoding="UTF-8"?>\n',
    version: str | None = "1.0",
    extra_metadata: str = "",
) -> bytes:
    """An aggregate report document; `namespace` with `prefix` writes prefixed elements."""
    records = [Rec()] if records is None else records
    q = f"{prefix}:" if prefix else ""
    if namespace and prefix:
        xmlns = f' xmlns:{prefix}="{namespace}"'
    elif namespace:
        xmlns = f' xmlns="{namespace}"'
    else:
        xmlns = ""
    version_xml = f"<{q}version>{version}</{q}version>" if version is not None else ""
    text = (
        f"{declaration}<{q}feedback{xmlns}>{version_xml}"
        f"<{q}report_metadata><{q}org_name>{org_name}</{q}org_name>"
        f"<{q}email>noreply@{org_name}</{q}email><{q}report_id>{report_id}</{q}report_id>"
        f"<{q}date_range><{q}begin>{begin}</{q}begin><{q}end>{end}</{q}end></{q}date_range>"
        f"{extra_metadata}</{q}report_metadata>"
        f"<{q}policy_published><{q}domain>{domain}</{q}domain><{q}adkim>r</{q}adkim>"
        f"<{q}aspf>r</{q}aspf><{q}p>{p}</{q}p><{q}sp>{p}</{q}sp>{extra_policy}"
        f"</{q}policy_published>\n"
        + "".join(record.xml(q) for record in records)
        + f"</{q}feedback>\n")
    return text.encode("utf-8")


def gz(data: bytes, trailing: bytes = b"") -> bytes:
    return gzip.compress(data, mtime=0) + trailing


def multi_member_gz(data: bytes, parts: int = 3) -> bytes:
    size = len(data) // parts + 1
    return b"".join(gzip.compress(data[i:i + size], mtime=0) for i in range(0, len(data), size))


def raw_zlib(data: bytes) -> bytes:
    return zlib.compress(data)


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


DEFAULT_SUBJECT = "Report Domain: example.com Submitter: receiver.example Report-ID: report-1"


def email_with(parts: list[tuple[bytes, str, str | None]], subject: str = DEFAULT_SUBJECT,
               body: str | None = "DMARC report attached.") -> bytes:
    """A multipart/mixed message; each part is (payload, content type, filename or None)."""
    message = MIMEMultipart("mixed")
    message["From"] = "noreply-dmarc@receiver.example"
    message["To"] = "dmarc@example.com"
    message["Subject"] = subject
    message["Message-ID"] = "<1@receiver.example>"
    if body is not None:
        message.attach(MIMEText(body, "plain"))
    for payload, content_type, filename in parts:
        maintype, subtype = content_type.split("/", 1)
        if maintype == "text":
            part = MIMEText(payload.decode("utf-8"), subtype)
        else:
            part = MIMEApplication(payload, subtype)
        if filename:
            part.add_header("Content-Disposition", "attachment", filename=filename)
        message.attach(part)
    return message.as_bytes()


def single_part_email(payload: bytes, content_type: str = "application/gzip",
                      encoding: str = "base64") -> bytes:
    """A message whose whole body is the report (Mimecast, Google's application/zip)."""
    message = EmailMessage()
    message["From"] = "dmarc@receiver.example"
    message["To"] = "dmarc@example.com"
    message["Subject"] = "Report Domain: example.com Submitter: receiver.example"
    maintype, subtype = content_type.split("/", 1)
    message.set_content(payload, maintype=maintype, subtype=subtype, cte=encoding,
                        filename="report.xml.gz")
    return message.as_bytes()


def forwarded(inner: bytes) -> bytes:
    """A message that carries another message as message/rfc822 (a forwarded report)."""
    outer = MIMEMultipart("mixed")
    outer["From"] = "admin@example.com"
    outer["To"] = "dmarc@example.com"
    outer["Subject"] = "Fwd: Report Domain: example.com"
    outer.attach(MIMEText("forwarding this report", "plain"))
    outer.attach(MIMEMessage(message_from_bytes(inner)))
    return outer.as_bytes()


def mbox(messages: list[bytes]) -> bytes:
    out = []
    for message in messages:
        body = b"\n".join((b">" + line) if line.startswith(b"From ") else line
                          for line in message.replace(b"\r\n", b"\n").split(b"\n"))
        out.append(b"From dmarc@receiver.example Mon Jan  1 00:00:00 2024\n" + body.rstrip(b"\n") + b"\n\n")
    return b"".join(out)
