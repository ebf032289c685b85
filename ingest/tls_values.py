"""Read the scalar values of an SMTP TLS report leniently, noting every repair.

Real generators send counts as strings, omit fields the RFC requires, and write dates in
more than one RFC 3339 style. Each helper turns what a person could still read into the
typed value and says what it did; what nobody could read raises `MalformedReport` naming
the field and where it is, so the sender's problem can be reported back precisely.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from ingest.errors import MalformedReport

MAX_COUNT = 2**63 - 1
"""Session counts are kept in signed 64-bit columns."""

_MISSING = object()
_UTF8_BOM = b"\xef\xbb\xbf"
_INTEGER = re.compile(r"[+-]?\d{1,30}")
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[Tt ](?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<offset>[Zz]|[+-]\d{2}(?::?\d{2})?)?)?")


@dataclass(slots=True)
class Notes:
    """Repair notes, one line per kind of repair however often it was made.

    A report with 5,000 failure details that all write counts as strings gets one line
    with a count and the first place it happened, not 5,000 lines.
    """

    _first: dict[str, str] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def add(self, where: str, message: str) -> None:
        if message in self._counts:
            self._counts[message] += 1
        else:
            self._counts[message] = 1
            self._first[message] = where

    def lines(self) -> list[str]:
        out = []
        for message, count in self._counts.items():
            where = self._first[message]
            line = f"{where}: {message}" if where else message
            out.append(line if count == 1 else f"{line} (and {count - 1} more like it)")
        return out


def kind_of(value: object) -> str:
    """A JSON value's type as the sender would name it, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def load_json(data: bytes, notes: Notes) -> object:
    """Decode and parse the document; tolerates a BOM, bad UTF-8 and trailing junk."""
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
        notes.add("", "UTF-8 byte order mark removed")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
        notes.add("", "bytes that are not UTF-8 replaced by U+FFFD")
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        obj: dict[str, object] = {}
        for key, value in items:
            if key in obj:
                duplicates.append(key)
            obj[key] = value
        return obj

    decoder = json.JSONDecoder(object_pairs_hook=pairs)
    stripped = text.lstrip(" \t\r\n")
    try:
        value, end = decoder.raw_decode(stripped)
    except json.JSONDecodeError as exc:
        raise MalformedReport(f"not JSON: {exc}") from None
    except RecursionError:
        raise MalformedReport("not a TLS report: JSON nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python will convert
        raise MalformedReport(f"not JSON that can be read: {exc}") from None
    rest = stripped[end:].strip(" \t\r\n\x00")
    if rest:
        notes.add("", f"{len(rest)} characters after the JSON document ignored")
    for key in dict.fromkeys(duplicates):
        notes.add("", f"key {key!r} appears twice in an object; the last value is used")
    return value


def member(obj: Mapping[str, object], key: str) -> object:
    """The value under `key`, or the missing marker (told apart from an explicit null)."""
    return obj.get(key, _MISSING)


def is_missing(value: object) -> bool:
    return value is _MISSING


def text(value: object, key: str, where: str, notes: Notes, *, required: bool = False,
         max_length: int | None = None) -> str | None:
    """A string field. Numbers are accepted as their text; NUL characters and characters
    UTF-8 cannot encode are replaced, since neither database would store them."""
    if value is _MISSING or value is None:
        if required:
            raise MalformedReport(_at(where, f"no {key}" if value is _MISSING else f"{key} is null"))
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        notes.add(where, f"{key} given as a number, read as text")
        value = str(value)
    if not isinstance(value, str):
        if required:
            raise MalformedReport(_at(where, f"{key} is {kind_of(value)}, not a string"))
        notes.add(where, f"{key} is {kind_of(value)}, not a string; left out")
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
        notes.add(where, f"NUL characters removed from {key}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
        notes.add(where, f"unencodable characters (lone surrogates) in {key} replaced")
    stripped = value.strip()
    if stripped != value and stripped:
        notes.add(where, f"white space around {key} removed")
    if not stripped:
        if required:
            raise MalformedReport(_at(where, f"{key} is empty"))
        notes.add(where, f"{key} is empty")
        return None
    if max_length is not None and len(stripped) > max_length:
        if required:
            raise MalformedReport(_at(where, f"{key} is {len(stripped)} characters long; more than "
                                             f"{max_length} is not a real {key}"))
        notes.add(where, f"{key} is {len(stripped)} characters long, too long to be real; left out")
        return None
    return stripped


def texts(value: object, key: str, where: str, notes: Notes) -> tuple[str, ...]:
    """A list of strings; a single string is accepted as a list of one (RFC 8460's own
    example writes `mx-host` that way)."""
    if value is _MISSING or value is None:
        return ()
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        notes.add(where, f"{key} given as a single value, not a list")
        one = text(value, key, where, notes)
        return () if one is None else (one,)
    if not isinstance(value, list):
        notes.add(where, f"{key} is {kind_of(value)}, not a list; left out")
        return ()
    items = (text(item, f"an item of {key}", where, notes) for item in value)
    return tuple(item for item in items if item is not None)


def count(value: object, key: str, where: str, notes: Notes) -> int:
    """A session count: a non-negative integer, possibly written as a string or a decimal."""
    if value is _MISSING or value is None:
        notes.add(where, f"no {key}; taken as 0" if value is _MISSING else f"{key} is null; taken as 0")
        return 0
    if isinstance(value, bool):
        raise MalformedReport(_at(where, f"{key} is a boolean, not a number"))
    if isinstance(value, str):
        digits = value.strip()
        if not _INTEGER.fullmatch(digits):
            raise MalformedReport(_at(where, f"{key} {value[:40]!r} is not a whole number"))
        notes.add(where, f"{key} given as a string")
        value = int(digits)
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise MalformedReport(_at(where, f"{key} {value!r} is not a whole number"))
        notes.add(where, f"{key} given as a decimal number")
        value = int(value)
    if not isinstance(value, int):
        raise MalformedReport(_at(where, f"{key} is {kind_of(value)}, not a number"))
    if value < 0:
        raise MalformedReport(_at(where, f"{key} is negative ({value})"))
    if value > MAX_COUNT:
        raise MalformedReport(_at(where, f"{key} ({value}) is larger than any real session count"))
    return value


def moment(value: object, key: str, where: str, notes: Notes) -> datetime:
    """An RFC 3339 date-time as an aware UTC datetime (`Z`, offsets, any fraction of a
    second). Missing offsets, bare dates, leap seconds and Unix times are repaired."""
    if value is _MISSING or value is None:
        raise MalformedReport(_at(where, f"no {key}" if value is _MISSING else f"{key} is null"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        notes.add(where, f"{key} given as a Unix time, not an RFC 3339 date-time")
        try:
            return datetime.fromtimestamp(value, UTC)
        except (ValueError, OverflowError, OSError):
            raise MalformedReport(_at(where, f"{key} {value!r} is not a usable time")) from None
    if not isinstance(value, str):
        raise MalformedReport(_at(where, f"{key} is {kind_of(value)}, not a date-time"))
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        raise MalformedReport(_at(where, f"{key} {value[:60]!r} is not an RFC 3339 date-time"))
    try:
        return _to_datetime(match, key, where, notes)
    except (ValueError, OverflowError):
        raise MalformedReport(_at(where, f"{key} {value[:60]!r} is not a valid date-time")) from None


def _to_datetime(match: re.Match[str], key: str, where: str, notes: Notes) -> datetime:
    day = datetime.fromisoformat(match["date"])
    if match["hour"] is None:
        notes.add(where, f"{key} is a date without a time; read as midnight UTC")
        return day.replace(tzinfo=UTC)
    second = int(match["second"])
    if second == 60:
        notes.add(where, f"{key} is a leap second; read as the second before")
        second = 59
    micro = int((match["fraction"] or "0")[:6].ljust(6, "0"))
    offset = match["offset"]
    if offset is None:
        notes.add(where, f"{key} has no UTC offset; read as UTC")
        zone = UTC
    elif offset in ("Z", "z"):
        zone = UTC
    else:
        if ":" not in offset:
            notes.add(where, f"{key} has an offset without a colon")
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or "0"))
        zone = timezone(-delta if offset[0] == "-" else delta)
    local = day.replace(hour=int(match["hour"]), minute=int(match["minute"]), second=second,
                        microsecond=micro, tzinfo=zone)
    return local.astimezone(UTC)


def _at(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message
