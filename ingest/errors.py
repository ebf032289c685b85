"""The one family of errors that bad input may raise.

Everything the pipeline rejects is reported as an `IngestError` (or a subclass), so callers
(CLI, HTTP endpoint, IMAP collector) can tell "the input is bad" from "the program is broken"
and keep going after the former.
"""

from __future__ import annotations


class IngestError(Exception):
    """Input that Rua cannot turn into a report; the message says why."""

    reason = "unreadable_input"
    """A stable code for counting failures by kind (metrics, API answers)."""


class LimitExceeded(IngestError):
    """A decompression or size limit was reached; names the limit so users can raise it."""

    reason = "limit_exceeded"

    def __init__(self, limit: str, value: int, detail: str) -> None:
        super().__init__(f"limit {limit}={value} exceeded: {detail}")
        self.limit = limit
        self.value = value


class UnsafeInput(IngestError):
    """Input that tries something a report never needs (DTDs, entities, path tricks)."""

    reason = "unsafe_input"


class UnrecognisedInput(IngestError):
    """Bytes that are not any container or report format Rua knows."""

    reason = "unrecognised_input"


class MalformedReport(IngestError):
    """A report document too damaged to read, even leniently."""

    reason = "malformed_report"
