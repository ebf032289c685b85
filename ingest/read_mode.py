"""How a document is to be read, and the signal to read it again another way.

Streaming is the fast path, but two kinds of document only show mid-way that it cannot serve
them: one the parallel reader cannot split safely, and one so damaged that libxml2's
streaming (push) parser gives up where its whole-document recovery would not. Either
raises `ReadAgain` naming the next mode; the caller rolls back what it wrote and starts over.
"""

from __future__ import annotations

from enum import StrEnum


class ReadMode(StrEnum):
    AUTO = "auto"
    """Parallel for large documents, serial streaming otherwise."""
    SERIAL = "serial"
    """The serial streaming parser: the reference."""
    WHOLE = "whole"
    """The whole document in memory with full recovery; only for damaged, bounded documents."""


class ReadAgain(Exception):
    """This document must be read again from the start, in `mode`."""

    def __init__(self, mode: ReadMode, reason: str) -> None:
        super().__init__(reason)
        self.mode = mode
