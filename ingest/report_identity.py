"""What makes two reports the same report, and the same content.

A report's identity is (normalised org_name, report_id, policy domain, begin, end): the same
report re-sent, or carried in another container, has it. Its content digest covers what the
report says, order-insensitively and after normalisation, so a re-send that only differs in
whitespace, case or record order is a duplicate, while one whose numbers differ is a
conflicting copy to be kept and flagged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ingest.aggregate_report import AggregateRecord, ReportHeader

_SPACE = re.compile(r"\s+")
_MASK = (1 << 128) - 1


def org_name_key(org_name: str | None) -> str | None:
    if org_name is None:
        return None
    return _SPACE.sub(" ", org_name).strip().casefold() or None


@dataclass(frozen=True, slots=True)
class ReportIdentity:
    org_key: str | None
    report_id: str | None
    policy_domain: str | None
    begin: int | None
    end: int | None

    @classmethod
    def of(cls, header: ReportHeader) -> ReportIdentity:
        return cls(
            org_key=org_name_key(header.org_name),
            report_id=header.report_id,
            policy_domain=header.policy.domain,
            begin=int(header.begin.timestamp()) if header.begin else None,
            end=int(header.end.timestamp()) if header.end else None,
        )

    @property
    def hash(self) -> str:
        text = "\x1f".join("" if part is None else str(part) for part in
                           (self.org_key, self.report_id, self.policy_domain, self.begin, self.end))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def lock_key(self) -> int:
        """A signed 64-bit number for PostgreSQL advisory locks."""
        return int.from_bytes(bytes.fromhex(self.hash[:16]), "big", signed=True)


class ContentDigest:
    """Order-insensitive digest: a sum of per-record hashes, plus the header's."""

    def __init__(self, header: ReportHeader) -> None:
        policy = header.policy
        head = (org_name_key(header.org_name), header.email, header.extra_contact_info,
                header.report_id, header.begin, header.end, header.errors, header.generator,
                policy)
        self._header = hashlib.blake2b(repr(head).encode("utf-8", "surrogatepass"),
                                       digest_size=16).hexdigest()
        self._sum = 0
        self.records = 0

    def add(self, record: AggregateRecord) -> None:
        """Fold in one record; raw texts are left out, so `Pass` and `pass` agree."""
        key = (record.source_ip, record.count, record.disposition, record.dkim, record.spf,
               record.header_from, record.envelope_from, record.envelope_to,
               tuple(reason[:2] for reason in record.reasons),
               tuple(result[:4] for result in record.dkim_results),
               tuple(result[:4] for result in record.spf_results))
        self._sum += int.from_bytes(
            hashlib.blake2b(repr(key).encode("utf-8", "surrogatepass"), digest_size=16).digest(),
            "big")
        self.records += 1

    def hexdigest(self) -> str:
        return f"{self._header}{self._sum & _MASK:032x}"
