"""What ingesting one input did: one `ReportOutcome` per report found, under an `InputOutcome`.

Kept apart from the pipeline so that the stores of each report kind (aggregate, failure, TLS)
can answer in the same terms without importing the pipeline that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ReportOutcome:
    location: str
    kind: str
    status: str
    """new, duplicate, failed or deferred (a kind whose parser is not there yet)."""
    report_id: int | None = None
    records: int = 0
    conflict_of: int | None = None
    error: str | None = None
    reason: str | None = None
    """why it failed, as a stable code (`IngestError.reason`, or internal_error)"""
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class InputOutcome:
    source: str
    sha256: str | None
    status: str
    """ok, partial (some reports failed), failed, or deferred (nothing parseable yet)."""
    error: str | None = None
    reason: str | None = None
    """why the input as a whole failed, as a stable code"""
    reports: list[ReportOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for report in self.reports if report.status == status)

    def describe_errors(self) -> str | None:
        """All of this input's errors in one line, for the quarantine listing."""
        errors = [self.error] if self.error else []
        errors += [f"{r.location}: {r.error}" for r in self.reports if r.status == "failed"]
        return "; ".join(errors)[:4000] or None

    @property
    def records_new(self) -> int:
        return sum(report.records for report in self.reports if report.status == "new")


