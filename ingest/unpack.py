"""Open every container layer of an input and yield the report documents inside.

An input is walked depth-first: gzip, zlib, zip (every member), e-mail (every part), mbox
(every message), to any nesting within the limits. Each document found becomes a `Payload`
that can be opened again (a conflicting copy is parsed twice), and each part that fails
becomes an `UnpackFailure`, so one bad member never hides its good siblings.
"""

from __future__ import annotations

import email.errors
import io
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import BinaryIO

from ingest.compressed_stream import Compression, InflateReader, buffered, read_limited
from ingest.errors import IngestError, LimitExceeded, MalformedReport, UnrecognisedInput, UnsafeInput
from ingest.limits import DecompressionBudget
from ingest.mail_message import read_message, split_mbox
from ingest.sniff import SNIFF_BYTES, ContainerKind, describe, sniff
from ingest.sniff import ReportKind as ReportKind  # re-exported: payloads carry it
from ingest.zip_member import open_member

Opener = Callable[[], BinaryIO]

_SPOOL_IN_MEMORY = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Payload:
    """One report document, ready for its parser; `open()` may be called more than once."""

    location: str
    kind: ReportKind
    opener: Opener
    notes: list[str] = field(default_factory=list)

    def open(self) -> BinaryIO:
        return self.opener()


@dataclass(frozen=True, slots=True)
class UnpackFailure:
    """A part of the input that could not be read; the rest of the input goes on."""

    location: str
    error: IngestError


def unpack(opener: Opener, location: str, budget: DecompressionBudget) -> Iterator[Payload | UnpackFailure]:
    """Yield every report document inside one input.

    Input-wide limits (total inflated bytes, members, depth) raise `LimitExceeded` and end
    the walk; damage confined to one part is yielded as an `UnpackFailure`. A payload must be
    opened before the walk moves on: the archive holding it is closed afterwards.
    """
    yield from _walk(opener, location, budget, depth=0, notes=[])


def _walk(opener: Opener, location: str, budget: DecompressionBudget, depth: int,
          notes: list[str]) -> Iterator[Payload | UnpackFailure]:
    budget.check_depth(depth)
    try:
        with opener() as stream:
            head = stream.read(SNIFF_BYTES)
    except LimitExceeded:
        raise
    except IngestError as exc:
        yield UnpackFailure(location, exc)
        return
    kind = sniff(head)
    if kind is ContainerKind.XML:
        yield Payload(location, ReportKind.AGGREGATE, opener, notes)
    elif kind is ContainerKind.JSON:
        if b"organization-name" in head or b"policies" in head:
            yield Payload(location, ReportKind.TLS, opener, notes)
        else:
            yield UnpackFailure(location, UnrecognisedInput(
                "JSON that is not an SMTP TLS report (no organization-name)"))
    elif kind in (ContainerKind.GZIP, ContainerKind.ZLIB):
        inner_notes = list(notes)  # this layer's notes belong to what it holds, not its siblings
        yield from _walk(_inflating(opener, kind, budget, inner_notes, location), location, budget,
                         depth + 1, inner_notes)
    elif kind is ContainerKind.ZIP:
        yield from _walk_zip(opener, location, budget, depth, notes)
    elif kind is ContainerKind.EMAIL:
        yield from _walk_message(_read_all(opener, budget), location, budget, depth, notes)
    elif kind is ContainerKind.MBOX:
        yield from _walk_mbox(opener, location, budget, depth, notes)
    elif kind is ContainerKind.EMPTY:
        yield UnpackFailure(location, UnrecognisedInput("empty input: no bytes, or only whitespace"))
    else:
        yield UnpackFailure(location, UnrecognisedInput(
            f"not a report or a known container (gzip, zip, XML, JSON, e-mail, mbox); "
            f"first bytes: {describe(head)}"))


def _inflating(opener: Opener, kind: ContainerKind, budget: DecompressionBudget,
               notes: list[str], location: str) -> Opener:
    compression = Compression.GZIP if kind is ContainerKind.GZIP else Compression.ZLIB

    def open_inflated() -> BinaryIO:
        reader = InflateReader(opener(), compression, budget=budget, notes=notes,
                               label=f"{location} ({kind})")
        return buffered(reader)

    return open_inflated


def _read_all(opener: Opener, budget: DecompressionBudget) -> bytes:
    with opener() as stream:
        return read_limited(stream, budget.limits.max_message_bytes, "max_message_bytes",
                            "an e-mail message")


def _walk_message(data: bytes, location: str, budget: DecompressionBudget, depth: int,
                  notes: list[str]) -> Iterator[Payload | UnpackFailure]:
    try:
        contents = read_message(data)
    except (ValueError, LookupError, TypeError, AttributeError, IndexError,
            email.errors.MessageError) as exc:
        yield UnpackFailure(location, MalformedReport(f"unreadable e-mail message ({exc})"))
        return
    if contents.kind is ReportKind.FAILURE:
        yield Payload(location, ReportKind.FAILURE, _bytes_opener(data), notes)
        return
    if not contents.parts:
        yield UnpackFailure(location, UnrecognisedInput(
            "e-mail holds no report (parts: " + ", ".join(contents.part_types) + ")"))
        return
    budget.charge_member("MIME parts", len(contents.parts))
    for part in contents.parts:
        yield from _walk(_bytes_opener(part.data), f"{location}/{part.location}", budget,
                         depth + 1, list(notes))


def _walk_mbox(opener: Opener, location: str, budget: DecompressionBudget, depth: int,
               notes: list[str]) -> Iterator[Payload | UnpackFailure]:
    with opener() as stream:
        for number, message in enumerate(split_mbox(stream, budget.limits.max_message_bytes), 1):
            budget.charge_message()
            yield from _walk_message(message, f"{location}#message {number}", budget,
                                     depth + 1, list(notes))


def _walk_zip(opener: Opener, location: str, budget: DecompressionBudget, depth: int,
              notes: list[str]) -> Iterator[Payload | UnpackFailure]:
    with ExitStack() as stack:
        source = stack.enter_context(opener())
        if not _is_plain_seekable(source):
            source = stack.enter_context(_spool(source))
        try:
            archive = stack.enter_context(zipfile.ZipFile(source))
            members = [info for info in archive.infolist() if not info.filename.endswith("/")]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError,
                EOFError, OSError) as exc:
            yield UnpackFailure(location, MalformedReport(f"damaged zip archive ({exc})"))
            return
        if not members:
            yield UnpackFailure(location, MalformedReport("zip archive holds no files"))
            return
        budget.charge_member("zip members", len(members))  # judged before any is read
        for info in members:
            member_location = f"{location}/{info.filename or '(unnamed member)'}"
            problem = _unsafe_member(info)
            if problem:
                yield UnpackFailure(member_location, UnsafeInput(problem))
                continue

            member_notes = list(notes)

            def opener_of(info: zipfile.ZipInfo = info, label: str = member_location,
                          member_notes: list[str] = member_notes) -> BinaryIO:
                return open_member(archive, source, info, budget, member_notes, label)

            yield from _walk(opener_of, member_location, budget, depth + 1, member_notes)


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or (len(name) > 1 and name[1] == ":"):
        return f"zip member name {info.filename!r} is an absolute path or climbs out of the archive"
    if info.flag_bits & 0x1:
        return f"zip member {info.filename!r} is encrypted"
    return None


def _is_plain_seekable(stream: BinaryIO) -> bool:
    """Files and in-memory buffers seek cheaply; inflating readers do not."""
    if isinstance(stream, io.BufferedReader):
        return isinstance(stream.raw, io.FileIO)
    return isinstance(stream, (io.BytesIO, io.FileIO))


def _spool(stream: BinaryIO) -> BinaryIO:
    spooled = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
    shutil.copyfileobj(stream, spooled, 256 * 1024)
    spooled.seek(0)
    return spooled  # type: ignore[return-value]


def _bytes_opener(data: bytes) -> Opener:
    return lambda: io.BytesIO(data)

