"""Hostile and broken inputs: refused with a clear error, kept in quarantine, and harmless.

For every case the input must fail with an error that says what is wrong, its original must be
kept byte for byte with status `failed`, nothing of it may leak (no file read through XXE, no
file written outside the data directory), and the next input must be stored normally.

Bombs are run in a child process (`python -m app ingest --json`) under an address-space limit
and a timeout, so "bounded memory and time" is measured, not assumed. The bombs themselves are
small: a deflate block that inflates to 1 MiB is flushed once and repeated, so a few MB of
test data inflate to gigabytes without the test ever compressing gigabytes.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from app.db import create_db_engine
from ingest.errors import LimitExceeded
from ingest.limits import DecompressionBudget, UnpackLimits
from ingest.original_store import OriginalStore
from ingest.pipeline import IngestPipeline, InputOutcome
from ingest.unpack import Payload, unpack
from tests import samples
from tests.conftest import REPO, count_rows

MiB = 2**20
XML = samples.aggregate_xml()
TABLES = ("original", "aggregate_report", "report_origin", "aggregate_record", "record_reason",
          "record_dkim_result", "record_spf_result")


# == building hostile inputs =======================================================================

def _affine(matrix: tuple[int, list[int]], crc: int) -> int:
    """Apply an affine map over GF(2)^32, given as (image of 0, images of each basis bit)."""
    constant, columns = matrix
    for bit in range(32):
        if crc >> bit & 1:
            constant ^= columns[bit]
    return constant


def crc32_repeated(block: bytes, times: int, crc: int = 0) -> int:
    """`zlib.crc32(block * times, crc)` in O(log times): crc32 over a block is affine in the start."""
    base = zlib.crc32(block, 0)
    step = (base, [zlib.crc32(block, 1 << bit) ^ base for bit in range(32)])
    while times:
        if times & 1:
            crc = _affine(step, crc)
        times >>= 1
        if times:  # square: f(f(c)) = L(L(c)) ^ f(b), with f(c) = L(c) ^ b
            step = (_affine(step, step[0]), [_affine(step, column) ^ step[0] for column in step[1]])
    return crc


def deflate_repeated(prefix: bytes, block: bytes, times: int, suffix: bytes = b"") -> tuple[bytes, int, int]:
    """A raw deflate stream of prefix + block * times + suffix, with its crc32 and size.

    After a full flush the compressor starts afresh, so the block's compressed form is the
    same every time and can be repeated: gigabytes of output for a few MB of stream.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH) == segment
    end = compressor.compress(suffix) + compressor.flush()
    crc = zlib.crc32(suffix, crc32_repeated(block, times, zlib.crc32(prefix)))
    return start + segment * times + end, crc, len(prefix) + len(block) * times + len(suffix)


def gzip_bomb(prefix: bytes, block: bytes, times: int, suffix: bytes = b"") -> bytes:
    stream, crc, size = deflate_repeated(prefix, block, times, suffix)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + stream
            + struct.pack("<LL", crc, size & 0xFFFFFFFF))


def raw_zip(members: list[tuple[str, bytes, int, int]], flags: int = 0) -> bytes:
    """A zip written field by field: (name, deflated data, crc32, size) per member."""
    out = bytearray()
    central = bytearray()
    for name, data, crc, size in members:
        encoded = name.encode()
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, 8, 0, 0x21, crc, len(data), size,
                           len(encoded), 0) + encoded + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, 8, 0, 0x21, crc, len(data),
                               size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    directory = len(out)
    out += central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members),
                                 len(central), directory, 0)
    return bytes(out)


def deflated(data: bytes) -> tuple[bytes, int, int]:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(), zlib.crc32(data), len(data)


def report_halves() -> tuple[bytes, bytes]:
    """A valid report cut just before `</feedback>`: padding goes in between."""
    start, end = XML.rsplit(b"</feedback>", 1)
    return start, b"</feedback>" + end


def nested_zips(depth: int) -> bytes:
    data = XML
    for level in range(depth):
        data = samples.zipped({f"level{level}.zip" if level else "report.xml": data})
    return data


def many_members(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for number in range(count):
            archive.writestr(f"m/{number:05}.txt", b"x")
    return buffer.getvalue()


def xxe(target: str, *, prolog: bytes = b"", report_id: str = "xxe") -> bytes:
    """A report whose org_name pulls in a local file through an external entity."""
    document = samples.aggregate_xml(org_name="&leak;", report_id=report_id, declaration="")
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n' + prolog
            + f'<!DOCTYPE feedback [<!ENTITY leak SYSTEM "{target}">]>\n'.encode() + document)


def billion_laughs(prolog: bytes = b"") -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    document = samples.aggregate_xml(org_name="&lol9;", report_id="laughs", declaration="")
    return (b'<?xml version="1.0"?>\n' + prolog + b"<!DOCTYPE feedback [" + "".join(entities).encode()
            + b"]>\n" + document)


def big_email(size: int) -> bytes:
    """A ~`size`-byte message whose only attachment is a large video, not a report."""
    chunk = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00" + bytes(range(256)) * 64
    raw = chunk * (size * 3 // 4 // len(chunk) + 1)
    return (b"From: someone@example.com\r\nTo: dmarc@example.com\r\nSubject: holiday video\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
            b"Content-Type: text/plain\r\n\r\nSee the attachment.\r\n--b\r\n"
            b"Content-Type: video/mp4\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"holiday.mp4\"\r\n\r\n"
            + base64.encodebytes(raw).replace(b"\n", b"\r\n") + b"--b--\r\n")


# == checking the outcome ============================================================================

def good_report() -> bytes:
    """A report no other input has sent: it must be stored as new."""
    return samples.aggregate_xml(report_id=f"good-{uuid.uuid4().hex}")


def ingest(pipeline: IngestPipeline, directory: Path, name: str, data: bytes) -> InputOutcome:
    path = directory / name
    path.write_bytes(data)
    return pipeline.ingest_path(path)


def all_errors(outcome: InputOutcome) -> str:
    return " ; ".join([outcome.error or ""] + [r.error or "" for r in outcome.reports])


def original_row(engine: Engine, sha256: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM original WHERE sha256 = :s"),
                                 {"s": sha256}).mappings().one())


def stored_bytes(data_dir: Path, row: dict[str, Any]) -> bytes:
    with OriginalStore(data_dir).open(str(row["storage_path"])) as stream:
        return stream.read()


def database_text(engine: Engine) -> str:
    """Everything the store holds, as text: whatever leaked would show up here."""
    with engine.connect() as conn:
        return "\n".join(repr(conn.execute(text(f"SELECT * FROM {table}")).all()) for table in TABLES)


def assert_quarantined(engine: Engine, data_dir: Path, outcome: InputOutcome, data: bytes,
                       *needles: str) -> dict[str, Any]:
    """Failed with an error saying why, kept byte for byte, and listed as failed."""
    assert outcome.status == "failed", (outcome.status, all_errors(outcome))
    assert outcome.sha256 == hashlib.sha256(data).hexdigest()
    errors = all_errors(outcome).lower()
    for needle in needles:
        assert needle.lower() in errors, (needle, all_errors(outcome))
    row = original_row(engine, outcome.sha256)
    assert row["status"] == "failed"
    assert row["error"], "the quarantine listing must say why the input failed"
    for needle in needles:
        assert needle.lower() in str(row["error"]).lower(), (needle, row["error"])
    assert hashlib.sha256(stored_bytes(data_dir, row)).hexdigest() == outcome.sha256
    assert row["size"] == len(data)
    return row


def assert_next_input_is_stored(pipeline: IngestPipeline, engine: Engine, directory: Path) -> None:
    document = good_report()
    outcome = ingest(pipeline, directory, f"next-{uuid.uuid4().hex}.xml", document)
    assert outcome.status == "ok", all_errors(outcome)
    assert [(r.status, r.records) for r in outcome.reports] == [("new", 1)]
    report_id = document.split(b"<report_id>")[1].split(b"<")[0].decode()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM aggregate_report WHERE report_id = :r"),
                              {"r": report_id}).scalar_one()
    assert stored == 1


def test_bomb_builders_are_exact() -> None:
    """The test's own tools: the repeated-block streams must be valid, with a correct CRC."""
    for block, times in ((b"ab" * 500, 0), (b"ab" * 500, 1), (ZEROS_KIB, 7), (ZEROS_KIB, 100)):
        for crc in (0, 12345):
            assert crc32_repeated(block, times, crc) == zlib.crc32(block * times, crc)
    expected = b"<head>" + b"xyz" * 10_000 * 33 + b"</tail>"
    assert gzip.decompress(gzip_bomb(b"<head>", b"xyz" * 10_000, 33, b"</tail>")) == expected
    stream, crc, size = deflate_repeated(b"<head>", ZEROS_KIB, 5)
    archive = zipfile.ZipFile(io.BytesIO(raw_zip([("r.xml", stream, crc, size)])))
    assert archive.read("r.xml") == b"<head>" + ZEROS_KIB * 5


ZEROS_KIB = bytes(1024)


# == in-process cases (SQLite and PostgreSQL) =======================================================

def _corrupt_member() -> bytes:
    archive = bytearray(samples.zipped({"report.xml": XML * 3}))
    start = archive.index(b"report.xml") + len(b"report.xml") + 20
    archive[start:start + 16] = bytes(16)
    return bytes(archive)


def _encrypted_member() -> bytes:
    return raw_zip([("secret.xml", *deflated(XML))], flags=0x1)


def _random_bytes() -> bytes:
    rng = random.Random(7)
    data = rng.randbytes(64 * 1024)
    return b"\x01" + data[1:]  # never starts like a known container


HOSTILE: dict[str, tuple[str, Callable[[], bytes], tuple[str, ...]]] = {
    "billion-laughs": ("laughs.xml", billion_laughs, ("DTD",)),
    "external-dtd": ("dtd.xml", lambda: XML.replace(
        b"<feedback>", b'<!DOCTYPE feedback SYSTEM "http://127.0.0.1:9/f.dtd">\n<feedback>'), ("DTD",)),
    "parameter-entity": ("param.xml", lambda: XML.replace(b"<feedback>", b'<!DOCTYPE feedback '
                         b'[<!ENTITY % ext SYSTEM "file:///etc/passwd"> %ext;]>\n<feedback>'), ("DTD",)),
    "truncated-gzip": ("report.xml.gz", lambda: samples.gz(XML * 2)[: len(samples.gz(XML * 2)) // 2],
                       ("truncated",)),
    "gzip-without-trailer": ("report.xml.gz", lambda: samples.gz(XML)[:-8], ("truncated",)),
    "truncated-zip": ("report.zip", lambda: samples.zipped({"report.xml": XML * 5})[:300], ("zip",)),
    "zip-without-directory": ("report.zip", lambda: samples.zipped({"report.xml": XML})[:-22], ("zip",)),
    "corrupt-zip-member": ("report.zip", _corrupt_member, ("report.xml",)),
    "encrypted-zip-member": ("report.zip", _encrypted_member, ("secret.xml", "encrypted")),
    "empty-file": ("report.xml", lambda: b"", ("empty",)),
    "blank-file": ("report.xml", lambda: b"\r\n \t\n", ("empty",)),
    "random-bytes": ("report.xml.gz", _random_bytes, ("not a report",)),
    "zip-20-deep": ("deep.zip", lambda: nested_zips(20), ("max_nesting_depth",)),
    "zip-5000-members": ("many.zip", lambda: many_members(5000), ("max_members",)),
    "gzip-of-nothing": ("report.xml.gz", lambda: samples.gz(b""), ("empty",)),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_input_is_quarantined(case: str, pipeline: IngestPipeline, engine: Engine,
                                      data_dir: Path, tmp_path: Path) -> None:
    """Each case fails fast with an error naming its problem, is kept, and harms nothing after it."""
    name, build, needles = HOSTILE[case]
    data = build()
    started = time.monotonic()
    outcome = ingest(pipeline, tmp_path, name, data)
    assert time.monotonic() - started < 20
    assert_quarantined(engine, data_dir, outcome, data, *needles)
    assert count_rows(engine, "aggregate_report") == 0
    assert_next_input_is_stored(pipeline, engine, tmp_path)


PASSWD = Path("/etc/passwd")


def _secret_file(tmp_path: Path) -> tuple[Path, str]:
    token = f"rua-secret-{uuid.uuid4().hex}"
    path = tmp_path / "secret.txt"
    path.write_text(token + "\n")
    return path, token


XXE_VARIANTS: dict[str, Callable[[str], bytes]] = {
    "plain": lambda target: xxe(target),
    "after-a-long-comment": lambda target: xxe(target, prolog=b"<!--" + b" padding " * 10_000 + b"-->\n"),
    "after-many-processing-instructions": lambda target: xxe(
        target, prolog=b"".join(b"<?pi-%d data?>\n" % i for i in range(6000))),
    "utf16-without-bom": lambda target: _utf16(xxe(target), bom=False),
    "utf16-with-bom": lambda target: _utf16(xxe(target), bom=True),
    "gzipped": lambda target: samples.gz(xxe(target)),
    "in-an-email": lambda target: samples.single_part_email(samples.gz(xxe(target))),
}


@pytest.mark.parametrize("variant", list(XXE_VARIANTS))
def test_xxe_never_reads_the_file(variant: str, pipeline: IngestPipeline, engine: Engine, data_dir: Path,
                                  tmp_path: Path) -> None:
    """An external entity must neither be resolved nor accepted, however the DTD is disguised."""
    secret, token = _secret_file(tmp_path)
    for target in (secret.as_uri(), "file:///etc/passwd"):
        data = XXE_VARIANTS[variant](target)
        outcome = ingest(pipeline, tmp_path, f"xxe-{uuid.uuid4().hex}.xml", data)
        seen = repr(outcome) + database_text(engine)
        assert token not in seen
        assert PASSWD.read_text().splitlines()[0] not in seen
        assert_refused_as_dtd(engine, data_dir, outcome, data)
    assert count_rows(engine, "aggregate_report") == 0
    assert_next_input_is_stored(pipeline, engine, tmp_path)


def test_billion_laughs_after_a_long_prolog(pipeline: IngestPipeline, engine: Engine, data_dir: Path,
                                            tmp_path: Path) -> None:
    """Entity expansion must be refused even when the DTD comes after 100 KB of comment."""
    data = billion_laughs(prolog=b"<!--" + b"x" * 100_000 + b"-->\n")
    started = time.monotonic()
    outcome = ingest(pipeline, tmp_path, "laughs.xml", data)
    assert time.monotonic() - started < 20
    assert "lollollol" not in database_text(engine)
    assert_refused_as_dtd(engine, data_dir, outcome, data)
    assert_next_input_is_stored(pipeline, engine, tmp_path)


def assert_refused_as_dtd(engine: Engine, data_dir: Path, outcome: InputOutcome, data: bytes) -> None:
    """Quarantined, with an error that says a DTD or entity declaration was refused."""
    row = assert_quarantined(engine, data_dir, outcome, data)
    error = str(row["error"]).lower()
    assert "dtd" in error or "doctype" in error or "entit" in error, row["error"]


def _utf16(document: bytes, bom: bool) -> bytes:
    encoded = document.replace(b'encoding="UTF-8"', b'encoding="UTF-16"').decode().encode("utf-16-le")
    return (b"\xff\xfe" if bom else b"") + encoded


EXTERNAL_DTD: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda doctype: XML.replace(b"<feedback>", doctype + b"\n<feedback>"),
    "after-a-long-comment": lambda doctype: XML.replace(
        b"<feedback>", b"<!--" + b"x" * 70_000 + b"-->\n" + doctype + b"\n<feedback>"),
    "utf16-with-bom": lambda doctype: _utf16(XML.replace(b"<feedback>", doctype + b"\n<feedback>"), True),
    "utf16-without-bom": lambda doctype: _utf16(XML.replace(b"<feedback>", doctype + b"\n<feedback>"), False),
}


@pytest.mark.parametrize("variant", list(EXTERNAL_DTD))
def test_external_dtd_is_refused_and_never_fetched(variant: str, pipeline: IngestPipeline, engine: Engine,
                                                   data_dir: Path, tmp_path: Path) -> None:
    """A DTD on a server we control: refused, and no connection may ever reach the server."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        port = server.getsockname()[1]
        doctype = f'<!DOCTYPE feedback SYSTEM "http://127.0.0.1:{port}/feedback.dtd">'.encode()
        data = EXTERNAL_DTD[variant](doctype)
        outcome = ingest(pipeline, tmp_path, "dtd.xml", data)
        with pytest.raises(BlockingIOError):
            server.accept()
    assert_refused_as_dtd(engine, data_dir, outcome, data)
    assert count_rows(engine, "aggregate_report") == 0
    assert_next_input_is_stored(pipeline, engine, tmp_path)


def test_xinclude_is_never_followed(pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    secret, token = _secret_file(tmp_path)
    data = samples.aggregate_xml(
        org_name=f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{secret.as_uri()}" '
                 f'parse="text"/>', report_id="xinclude")
    outcome = ingest(pipeline, tmp_path, "xinclude.xml", data)
    assert token not in repr(outcome) + database_text(engine)
    assert_next_input_is_stored(pipeline, engine, tmp_path)


# -- zip member names that climb out --------------------------------------------------------------

def _tree(root: Path, skip: Path) -> set[Path]:
    """Files under `root`, leaving out `skip` and the SQLite database (with its -wal and -shm)."""
    return {p for p in root.rglob("*")
            if p.is_file() and skip not in p.parents and not p.name.startswith("rua.db")}


def test_zip_member_names_cannot_escape(pipeline: IngestPipeline, engine: Engine, data_dir: Path,
                                        tmp_path: Path) -> None:
    """Absolute and climbing names are refused by name; nothing is written outside the data dir."""
    tag = uuid.uuid4().hex
    escape = f"rua-escape-{tag}.xml"
    names = ["../../etc/passwd", "/etc/passwd", f"../../{escape}", f"/tmp/{escape}",
             f"..\\..\\{escape}", f"C:/{escape}", f"reports/../../{escape}"]
    archive = samples.zipped({name: samples.aggregate_xml(report_id=f"escape-{i}")
                              for i, name in enumerate(names)})
    passwd_before = hashlib.sha256(PASSWD.read_bytes()).hexdigest()
    outside_before = _tree(tmp_path, data_dir)
    outcome = ingest(pipeline, tmp_path, "escape.zip", archive)
    row = assert_quarantined(engine, data_dir, outcome, archive)
    failed = {r.location.split("escape.zip/", 1)[1]: r.error or "" for r in outcome.reports}
    assert set(failed) == set(names)
    for name, error in failed.items():
        assert repr(name) in error or name in error, (name, error)
        assert name in str(row["error"])
    assert count_rows(engine, "aggregate_report") == 0
    assert hashlib.sha256(PASSWD.read_bytes()).hexdigest() == passwd_before
    assert _tree(tmp_path, data_dir) == outside_before | {tmp_path / "escape.zip"}
    for root in (Path("/tmp"), tmp_path.parent, Path.cwd(), Path("/")):
        assert not list(root.glob(f"rua-escape-{tag}*"))
    assert_next_input_is_stored(pipeline, engine, tmp_path)


def test_safe_members_next_to_escaping_ones_are_still_read(pipeline: IngestPipeline, engine: Engine,
                                                           tmp_path: Path) -> None:
    archive = samples.zipped({"../../evil.xml": samples.aggregate_xml(report_id="evil"),
                              "ok/report.xml": samples.aggregate_xml(report_id="fine")})
    outcome = ingest(pipeline, tmp_path, "mixed.zip", archive)
    assert outcome.status == "partial"
    assert sorted(r.status for r in outcome.reports) == ["failed", "new"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT report_id FROM aggregate_report")).scalars().all() == ["fine"]


# -- ratio judged on what is really read ----------------------------------------------------------

def test_zip_member_ratio_counts_the_compressed_bytes_really_read() -> None:
    """Padding a member's compressed size must not buy a bigger inflation allowance.

    The member's deflate stream is ~64 KiB and inflates to 64 MiB (ratio 1000); 1 MiB of
    padding after it (inside the member, never read by the inflater) must not make it pass
    a limit of 200.
    """
    start, end = report_halves()
    stream, crc, size = deflated(start + b" " * (64 * MiB) + end)
    padded = stream + bytes(MiB)
    archive = raw_zip([("report.xml", padded, crc, size)])
    budget = DecompressionBudget(UnpackLimits(max_compression_ratio=200, ratio_grace_bytes=8 * MiB))
    inflated = 0
    with pytest.raises(LimitExceeded) as info:
        for item in unpack(lambda: io.BytesIO(archive), "input", budget):
            assert isinstance(item, Payload), item
            with item.open() as member:
                while chunk := member.read(MiB):
                    inflated += len(chunk)
    assert info.value.limit == "max_compression_ratio"
    assert inflated < 32 * MiB


# -- quarantine and retry -------------------------------------------------------------------------

RETRIED = {
    "xxe.xml": xxe("file:///etc/passwd"),
    "truncated.xml.gz": samples.gz(XML)[:-8],
    "random.bin": _random_bytes(),
    "empty.xml": b"",
    "escape.zip": samples.zipped({"../../etc/passwd": XML}),
    "no-report.eml": samples.email_with([], body="nothing here"),
}


def test_retry_keeps_failed_inputs_failed_with_their_error(pipeline: IngestPipeline, engine: Engine,
                                                           data_dir: Path, tmp_path: Path) -> None:
    """Re-parsing a quarantined input gives the same verdict, from the same kept bytes."""
    first: dict[str, dict[str, Any]] = {}
    for name, data in RETRIED.items():
        outcome = ingest(pipeline, tmp_path, name, data)
        first[outcome.sha256 or ""] = assert_quarantined(engine, data_dir, outcome, data)
    good = ingest(pipeline, tmp_path, "good.xml", good_report())
    assert good.status == "ok"

    retried = list(pipeline.retry_failed())
    assert sorted(o.sha256 or "" for o in retried) == sorted(first)
    for outcome in retried:
        before = first[outcome.sha256 or ""]
        assert outcome.status == "failed"
        row = original_row(engine, outcome.sha256 or "")
        assert (row["status"], row["error"]) == ("failed", before["error"])
        assert row["attempts"] == before["attempts"] + 1
        assert hashlib.sha256(stored_bytes(data_dir, row)).hexdigest() == outcome.sha256
    assert original_row(engine, good.sha256 or "")["attempts"] == 1
    assert count_rows(engine, "aggregate_report") == 1


@pytest.mark.parametrize("data", [
    pytest.param(XML, id="xml-kept-compressed"),
    pytest.param(samples.gz(XML, trailing=b"\r\n"), id="gzip-kept-as-is"),
    pytest.param(b"", id="empty"),
    pytest.param(_random_bytes(), id="random"),
    pytest.param(b"\xef\xbb\xbf" + XML.replace(b"\n", b"\r\n"), id="bom-crlf"),
    pytest.param(samples.zipped({"a.xml": XML}), id="zip"),
])
def test_kept_original_is_byte_identical(data: bytes, pipeline: IngestPipeline, engine: Engine,
                                         data_dir: Path) -> None:
    """Whatever Rua does to store it (compression, names), the bytes read back are the bytes sent."""
    outcome = pipeline.ingest_stream(io.BytesIO(data), "upload")
    assert outcome.sha256 == hashlib.sha256(data).hexdigest()
    row = original_row(engine, outcome.sha256)
    assert stored_bytes(data_dir, row) == data
    assert (data_dir / str(row["storage_path"])).resolve().is_relative_to(data_dir.resolve())


def test_retry_after_raising_a_limit_recovers_the_input(engine: Engine, data_dir: Path,
                                                        tmp_path: Path) -> None:
    """The quarantine's purpose: fix the cause (here, a limit), retry, and get the report."""
    document = samples.aggregate_xml([samples.Rec(source_ip=f"192.0.2.{i}") for i in range(1, 60)])
    strict = IngestPipeline(engine, data_dir, UnpackLimits(max_decompressed_bytes=4096))
    outcome = ingest(strict, tmp_path, "report.xml.gz", samples.gz(document))
    assert outcome.status == "failed" and "max_decompressed_bytes" in all_errors(outcome)

    relaxed = IngestPipeline(engine, data_dir, UnpackLimits())
    [retried] = list(relaxed.retry_failed())
    assert retried.status == "ok"
    assert [(r.status, r.records) for r in retried.reports] == [("new", 59)]
    row = original_row(engine, outcome.sha256 or "")
    assert (row["status"], row["error"], row["attempts"]) == ("ok", None, 2)
    assert list(relaxed.retry_failed()) == []


def test_retry_of_a_partial_input_adds_nothing_twice(pipeline: IngestPipeline, engine: Engine,
                                                     tmp_path: Path) -> None:
    archive = samples.zipped({"good.xml": samples.aggregate_xml(report_id="kept"),
                              "bad.xml.gz": samples.gz(XML)[:-8]})
    outcome = ingest(pipeline, tmp_path, "mixed.zip", archive)
    assert outcome.status == "partial"
    records = count_rows(engine, "aggregate_record")
    [retried] = list(pipeline.retry_failed())
    assert retried.status == "partial"
    assert sorted(r.status for r in retried.reports) == ["duplicate", "failed"]
    assert count_rows(engine, "aggregate_report") == 1
    assert count_rows(engine, "aggregate_record") == records


# == bombs, in a child process under a memory limit ================================================

MEMORY_LIMIT = 1536 * MiB


def run_rua(args: list[str], database_url: str, data_dir: Path, cwd: Path, timeout: float,
            env: dict[str, str] | None = None) -> tuple[dict[str, Any], float]:
    """`python -m app ingest --json ...` limited to 1.5 GB of address space and `timeout` seconds."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RUA_")}
    environment.update(RUA_DATABASE_URL=database_url, RUA_DATA_DIR=str(data_dir),
                       PYTHONPATH=str(REPO), **(env or {}))

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "app", "ingest", "--json", *args], cwd=cwd,
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=limit_memory, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"rua ingest did not finish within {timeout} s: time is not bounded")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # worker processes it may have left behind
    elapsed = time.monotonic() - started
    try:
        summary = json.loads(stdout)
    except json.JSONDecodeError:
        pytest.fail(f"rua ingest crashed (exit {process.returncode}) instead of refusing the input:\n"
                    f"{stderr.decode(errors='replace')[-3000:]}")
    return summary, elapsed


ZEROS = bytes(MiB)
SPACES = b" " * MiB
_START, _END = report_halves()


def _zip_bomb(prefix: bytes, block: bytes, times: int, suffix: bytes, name: str) -> bytes:
    stream, crc, size = deflate_repeated(prefix, block, times, suffix)
    return raw_zip([(name, stream, crc, size)])


BOMBS: dict[str, tuple[str, Callable[[], bytes], str, float, dict[str, str]]] = {
    # case: (file name, builder, what the error must say, timeout, extra environment)
    "zip-bomb-3GB-of-zeros": ("bomb.zip", lambda: _zip_bomb(b"", ZEROS, 3072, b"", "zeros.xml"),
                              "not a report", 30, {}),
    "zip-bomb-3GB-report": ("bomb.zip", lambda: _zip_bomb(_START, SPACES, 3072, _END, "report.xml"),
                            "limit max_", 30, {}),
    "gzip-bomb-3GB-of-zeros": ("bomb.xml.gz", lambda: gzip_bomb(b"", ZEROS, 3072), "not a report", 30, {}),
    "gzip-bomb-3GB-report": ("bomb.xml.gz", lambda: gzip_bomb(_START, SPACES, 3072, _END),
                             "limit max_", 30, {}),
    "gzip-bomb-3GB-email": ("bomb.eml.gz", lambda: gzip_bomb(
        b"From: a@b\nSubject: x\nContent-Type: text/plain\n\n", (b"A" * 1023 + b"\n") * 1024, 3072),
        "limit max_", 30, {}),
    "gzip-bomb-mbox-one-endless-line": ("bomb.mbox.gz", lambda: gzip_bomb(
        b"From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\n", b"A" * MiB, 3072),
        "limit max_", 30, {"RUA_MAX_COMPRESSION_RATIO": "1000000"}),
    "zip-20-deep": ("deep.zip", lambda: nested_zips(20), "max_nesting_depth", 30, {}),
    "zip-5000-members": ("many.zip", lambda: many_members(5000), "max_members", 30, {}),
    "email-50MB-over-the-default-limit": ("big.eml", lambda: big_email(50 * MiB), "max_message_bytes",
                                          30, {}),
    "email-50MB-allowed-but-no-report": ("big.eml", lambda: big_email(50 * MiB), "no report", 120,
                                         {"RUA_MAX_MESSAGE_BYTES": str(64 * MiB)}),
    "report-padded-with-24MB-of-whitespace": (
        "padded.xml", lambda: _START + b" " * (24 * MiB) + _END, "", 30, {}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BOMBS))
def test_bomb_is_refused_in_bounded_memory_and_time(case: str, database_url: str, data_dir: Path,
                                                    tmp_path: Path) -> None:
    """Run for real under RLIMIT_AS=1.5 GB: a crash (MemoryError) or a hang fails the test."""
    name, build, needle, timeout, env = BOMBS[case]
    bomb = tmp_path / name
    bomb.write_bytes(build())
    good = tmp_path / "good.xml"
    good.write_bytes(good_report())

    summary, elapsed = run_rua([str(bomb), str(good)], database_url, data_dir, tmp_path, timeout, env)
    assert elapsed < timeout
    first, second = summary["results"]
    assert second["status"] == "ok" and [r["status"] for r in second["reports"]] == ["new"]

    engine = create_db_engine(database_url)
    try:
        row = original_row(engine, first["sha256"])
        assert hashlib.sha256(stored_bytes(data_dir, row)).hexdigest() == first["sha256"]
        assert row["sha256"] == hashlib.sha256(bomb.read_bytes()).hexdigest()
        if not needle:  # an honest (if odd) report: it must simply be read
            assert first["status"] == "ok", first
            assert row["status"] == "ok"
            return
        errors = " ".join([first["error"] or ""] + [r["error"] or "" for r in first["reports"]])
        assert first["status"] == "failed", first
        assert needle in errors, errors
        assert row["status"] == "failed" and needle in row["error"]
        assert count_rows(engine, "aggregate_report") == 1
    finally:
        engine.dispose()
