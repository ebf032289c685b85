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
from datetime import datetime

from ingest.aggregate_report import ReportHeader

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


HEADER_FIELDS = ("org_name", "email", "extra_contact_info", "report_id", "date_begin", "date_end",
                 "errors", "generator", "policy_domain", "adkim", "aspf", "p", "sp", "np", "pct",
                 "fo", "testing", "discovery_method")


def header_values(header: ReportHeader) -> tuple[object, ...]:
    """The header as the store keeps it, in `HEADER_FIELDS` order."""
    policy = header.policy
    return (header.org_name, header.email, header.extra_contact_info, header.report_id,
            header.begin, header.end, header.errors, header.generator, policy.domain,
            policy.adkim, policy.aspf, policy.p, policy.sp, policy.np, policy.pct, policy.fo,
            policy.testing, policy.discovery_method)


class ContentDigest:
    """Order-insensitive digest: the header's hash and the sum of the records' hashes.

    It is computed from the values as stored, so it can be taken from a freshly parsed
    report or from the rows of one stored long ago, and the two agree.
    """

    def __init__(self, header: tuple[object, ...]) -> None:
        """`header` holds the `HEADER_FIELDS`; values are brought to one form first (the
        database hands back lists for tuples and its own time zone objects)."""
        values = dict(zip(HEADER_FIELDS, header, strict=True))
        org_name = values["org_name"]
        values["org_name"] = org_name_key(org_name if isinstance(org_name, str) else None)
        for name in ("date_begin", "date_end"):
            moment = values[name]
            values[name] = int(moment.timestamp()) if isinstance(moment, datetime) else None
        errors = values["errors"]
        values["errors"] = tuple(errors) if isinstance(errors, (list, tuple)) else ()
        self._header = hashlib.blake2b(repr(tuple(values.values())).encode("utf-8", "surrogatepass"),
                                       digest_size=16).hexdigest()
        self._sum = 0
        self.records = 0

    def add(self, record_sum: int, records: int) -> None:
        self._sum += record_sum
        self.records += records

    def hexdigest(self) -> str:
        return f"{self._header}{self._sum & _MASK:032x}"
