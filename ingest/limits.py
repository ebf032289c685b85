"""Limits that keep hostile or broken inputs from exhausting memory, disk or time."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.errors import LimitExceeded


@dataclass(frozen=True, slots=True)
class UnpackLimits:
    """Per-input limits; defaults fit the largest real reports with a wide margin."""

    max_input_bytes: int = 512 * 1024 * 1024
    # e-mails are parsed whole by the standard library: up to ten times their size in memory
    max_message_bytes: int = 32 * 1024 * 1024
    max_decompressed_bytes: int = 4 * 1024 * 1024 * 1024
    max_compression_ratio: int = 200
    # the ratio is only judged once this much has been inflated: tiny streams have odd ratios
    ratio_grace_bytes: int = 8 * 1024 * 1024
    max_nesting_depth: int = 6
    max_members: int = 1000
    max_mbox_messages: int = 100_000


@dataclass(slots=True)
class DecompressionBudget:
    """What one input has used so far, shared by every layer unpacked from it."""

    limits: UnpackLimits
    decompressed_bytes: int = 0
    members: int = 0
    messages: int = 0
    _high_marks: dict[str, int] = field(default_factory=dict)

    def charge_stream(self, stream: str, inflated: int) -> None:
        """A stream has inflated `inflated` bytes so far; only growth past its previous high
        mark counts, so opening a stream again (to sniff it, then parse it) costs nothing."""
        grown = inflated - self._high_marks.get(stream, 0)
        if grown <= 0:
            return
        self._high_marks[stream] = inflated
        self.decompressed_bytes += grown
        if self.decompressed_bytes > self.limits.max_decompressed_bytes:
            raise LimitExceeded(
                "max_decompressed_bytes", self.limits.max_decompressed_bytes,
                "the input inflates to more than that many bytes in total")

    def charge_member(self, what: str, count: int = 1) -> None:
        self.members += count
        if self.members > self.limits.max_members:
            raise LimitExceeded(
                "max_members", self.limits.max_members,
                f"the input holds more {what} than allowed")

    def charge_message(self) -> None:
        self.messages += 1
        if self.messages > self.limits.max_mbox_messages:
            raise LimitExceeded(
                "max_mbox_messages", self.limits.max_mbox_messages,
                "the mbox holds more messages than allowed")

    def check_depth(self, depth: int) -> None:
        if depth > self.limits.max_nesting_depth:
            raise LimitExceeded(
                "max_nesting_depth", self.limits.max_nesting_depth,
                "containers are nested deeper than allowed")

    def check_ratio(self, inflated: int, compressed: int) -> None:
        limits = self.limits
        if inflated > limits.ratio_grace_bytes and inflated > compressed * limits.max_compression_ratio:
            raise LimitExceeded(
                "max_compression_ratio", limits.max_compression_ratio,
                f"{inflated} bytes inflated from {compressed} compressed bytes")
