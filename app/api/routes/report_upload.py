"""`POST /api/v1/reports`: upload reports over HTTP, as raw bytes or multipart form data.

Every upload goes through the same pipeline as `rua ingest`: its bytes are kept before
anything is parsed, so an upload the server cannot read is quarantined rather than lost, and
the same report uploaded twice (even at the same moment, by many clients) is stored once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from app.deps import IngestAccess, PipelineDep, SettingsDep
from app.metrics import observe_ingest
from app.problems import Problem, problem_responses
from app.upload_body import (
    BodyTooLarge,
    MalformedMultipart,
    SpooledBody,
    disposition_filename,
    multipart_boundary,
    receive_body,
    split_multipart,
)
from ingest.pipeline import IngestPipeline, InputOutcome

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

RAW_BODY_NAME = "body"
RETRY_AFTER_SECONDS = "30"
_MAX_DETAIL_ERRORS = 5


class UploadedInput(BaseModel):
    """One file of the upload (the whole body, unless it was multipart)."""

    filename: str = Field(description="the file's name as sent (cleaned), or 'body' for a raw upload")
    sha256: str | None = Field(description="what its bytes are kept under; None only when they were "
                                           "not kept (over the per-input size limit)")
    size: int = Field(description="bytes received")
    status: str = Field(description="ok, partial (some reports failed), failed, or deferred")
    error: str | None = Field(default=None, description="why the input as a whole failed")
    reason: str | None = Field(default=None, description="that failure as a stable code")


class UploadedReport(BaseModel):
    """One report found in the upload."""

    input: int = Field(description="index of the file it came from in `inputs`")
    location: str = Field(description="where in that file it was found")
    kind: str = Field(description="aggregate, failure, tls, or unknown (an unreadable part)")
    status: str = Field(description="new, duplicate, failed, or deferred (recognised, not parsed yet)")
    id: int | None = Field(default=None, description="the stored report's id (new and duplicate)")
    records: int = Field(default=0, description="its record count")
    conflict_of: int | None = Field(
        default=None, description="set when a report of the same identity but other content was stored")
    error: str | None = None
    reason: str | None = Field(default=None, description="why it failed, as a stable code")
    notes: list[str] = Field(default_factory=list, description="repairs made while reading it")


class UploadResult(BaseModel):
    """What an upload brought: the totals, each file received, and each report found."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "reports_new": 1, "reports_duplicate": 0, "reports_failed": 0, "reports_deferred": 0,
        "records_new": 12,
        "inputs": [{"filename": "google.com!example.com!1700000000!1700086399.xml.gz",
                    "sha256": "9f2c1e3a5b7d9f2c1e3a5b7d9f2c1e3a5b7d9f2c1e3a5b7d9f2c1e3a5b7d9f2c",
                    "size": 1432, "status": "ok", "error": None, "reason": None}],
        "reports": [{"input": 0, "location": "upload:google.com!example.com!1700000000!1700086399.xml.gz",
                     "kind": "aggregate", "status": "new", "id": 42, "records": 12,
                     "conflict_of": None, "error": None, "reason": None, "notes": []}],
    }]})

    reports_new: int
    reports_duplicate: int
    reports_failed: int
    reports_deferred: int
    records_new: int
    inputs: list[UploadedInput]
    reports: list[UploadedReport]

    def status_code(self) -> int:
        """201 when anything is new, 200 when all was stored before, 202 when all is kept for a
        parser to come; anything else (nothing stored, and something failed or nothing was
        found) is a 422."""
        if self.reports_new:
            return 201
        if self.reports_duplicate:
            return 200
        if self.reports_deferred and not self.failures():
            return 202
        return 422

    def failures(self) -> list[dict[str, Any]]:
        """Every error of the upload, input-wide ones and per report, with where the bytes are."""
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(self.inputs):
            if item.error:
                errors.append({"input": index, "filename": item.filename, "sha256": item.sha256,
                               "location": None, "error": item.error, "reason": item.reason})
        for report in self.reports:
            if report.status == "failed":
                item = self.inputs[report.input]
                errors.append({"input": report.input, "filename": item.filename, "sha256": item.sha256,
                               "location": report.location, "error": report.error,
                               "reason": report.reason})
        return errors


def _result(received: list[tuple[str, int, InputOutcome]]) -> UploadResult:
    inputs: list[UploadedInput] = []
    reports: list[UploadedReport] = []
    for index, (filename, size, outcome) in enumerate(received):
        inputs.append(UploadedInput(filename=filename, sha256=outcome.sha256, size=size,
                                    status=outcome.status, error=outcome.error, reason=outcome.reason))
        reports += [UploadedReport(input=index, location=r.location, kind=r.kind, status=r.status,
                                   id=r.report_id, records=r.records, conflict_of=r.conflict_of,
                                   error=r.error, reason=r.reason, notes=r.notes)
                    for r in outcome.reports]

    def count(status: str) -> int:
        return sum(1 for report in reports if report.status == status)

    return UploadResult(reports_new=count("new"), reports_duplicate=count("duplicate"),
                        reports_failed=count("failed"), reports_deferred=count("deferred"),
                        records_new=sum(o.records_new for _, _, o in received),
                        inputs=inputs, reports=reports)


def _ingest_one(pipeline: IngestPipeline, filename: str, body: SpooledBody) -> tuple[str, int, InputOutcome]:
    with body.reader() as stream:
        outcome = pipeline.ingest_stream(stream, f"upload:{filename}")
    observe_ingest(outcome)
    log.info("upload %s (%d bytes, sha256 %s): %s, %d new, %d duplicate, %d failed, %d deferred",
             filename, body.size, outcome.sha256, outcome.status, outcome.count("new"),
             outcome.count("duplicate"), outcome.count("failed"), outcome.count("deferred"))
    return filename, body.size, outcome


def _ingest_upload(pipeline: IngestPipeline, body: SpooledBody, boundary: bytes | None,
                   raw_name: str | None, incoming: Path) -> UploadResult:
    """Split (if multipart) and ingest every file, in order. Blocking: runs in a worker thread,
    each upload in its own, sharing only the pipeline (whose store is thread-safe)."""
    if boundary is None:
        return _result([_ingest_one(pipeline, raw_name or RAW_BODY_NAME, body)])
    try:
        parts = split_multipart(body, boundary, incoming)
    except MalformedMultipart as exc:
        raise Problem(422, "malformed-multipart", "Malformed multipart body",
                      f"the multipart/form-data body cannot be read: {exc}") from None
    try:
        if not parts:
            raise Problem(422, "no-file", "No file in the upload",
                          "the multipart/form-data body holds no file part; send each report as a "
                          "file (for example `curl -F files=@report.xml.gz`)")
        received = []
        for number, part in enumerate(parts, 1):
            received.append(_ingest_one(pipeline, part.filename or f"part-{number}", part.body))
            part.body.close()  # the pipeline kept its own copy: free the disk as we go
        return _result(received)
    finally:
        for part in parts:
            part.body.close()


def _too_large(limit: int) -> Problem:
    # close the connection: the rest of the body is never read, so it cannot carry a next request
    return Problem(413, "upload-too-large", "Upload too large",
                   f"the upload is larger than the limit of {limit} bytes (RUA_MAX_UPLOAD_BYTES); "
                   "nothing was kept", headers={"Connection": "close"}, limit=limit)


_BINARY = {"schema": {"type": "string", "format": "binary"}}
REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "description": (
        "Either the raw bytes of one input (a report's XML, gzip, zip, an e-mail carrying reports, "
        "or an mbox of such e-mails; the content type is not trusted, the bytes are sniffed), or "
        "`multipart/form-data` with one or more files. A raw upload may name itself with "
        "`Content-Disposition: attachment; filename=\"...\"`."),
    "content": {
        **{media: _BINARY for media in (
            "application/octet-stream", "application/xml", "text/xml", "application/gzip",
            "application/zip", "message/rfc822", "application/mbox")},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["files"],
            "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"},
                                     "description": "report files; every file part is ingested, "
                                                    "whatever its field name"}}}},
    },
}


@router.post(
    "",
    status_code=201,
    response_model=UploadResult,
    summary="Upload reports",
    responses={
        200: {"model": UploadResult, "description": "Everything found was already stored (duplicates)"},
        201: {"description": "At least one new report was stored"},
        202: {"model": UploadResult,
              "description": "Only reports of a kind recognised but not parsed yet (failure, TLS): kept"},
        **problem_responses(401, 403, 413, 422, 503),
    },
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def upload_reports(request: Request, response: Response, _token: IngestAccess,
                         settings: SettingsDep, pipeline: PipelineDep) -> UploadResult:
    """Ingest the reports in an upload; each one is stored once however often it is sent.

    Answers 201 when at least one report is new, 200 when all were stored before, 202 when all
    are failure or TLS reports (kept for when they are parsed). Nothing stored and something
    failed (no report in the input, unreadable bytes) is a 422 problem listing the errors; the
    bytes are kept all the same (`inputs[].sha256`, with status failed). Uploads over
    `RUA_MAX_UPLOAD_BYTES` get 413 without their body being read. Needs the `ingest` scope.
    """
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    try:
        boundary = multipart_boundary(request.headers.get("content-type"))
    except MalformedMultipart as exc:
        raise Problem(422, "malformed-multipart", "Malformed multipart body", str(exc)) from None
    incoming = settings.data_dir / "incoming"
    try:
        body = await receive_body(request.stream(), limit, incoming)
    except BodyTooLarge:
        raise _too_large(limit) from None
    except ClientDisconnect:
        raise Problem(400, "incomplete-body", "Incomplete body",
                      "the client went away before the body was complete; nothing was kept") from None
    raw_name = disposition_filename(request.headers.get("content-disposition"))
    try:
        with body:
            result = await run_in_threadpool(_ingest_upload, pipeline, body, boundary, raw_name, incoming)
    except SQLAlchemyError as exc:
        log.error("upload failed, the database is unavailable: %s: %s", type(exc).__name__,
                  str(exc).splitlines()[0] if str(exc) else "")
        raise Problem(503, "store-unavailable", "Service unavailable",
                      "the database failed while storing this upload; try again later. Bytes already "
                      "received are kept and `rua ingest --retry-failed` picks them up",
                      headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    except OSError as exc:
        log.error("upload failed, cannot write to the data directory: %s", exc)
        raise Problem(503, "store-unavailable", "Service unavailable",
                      "the server cannot write to its data directory; try again later",
                      headers={"Retry-After": RETRY_AFTER_SECONDS}) from None
    status = result.status_code()
    if status == 422:
        errors = result.failures()
        shown = "; ".join(f"{e['location'] or 'upload:' + e['filename']}: {e['error']}"
                          for e in errors[:_MAX_DETAIL_ERRORS])
        more = f" (and {len(errors) - _MAX_DETAIL_ERRORS} more)" if len(errors) > _MAX_DETAIL_ERRORS else ""
        kept = ("the bytes are kept, under inputs[].sha256" if all(i.sha256 for i in result.inputs)
                else "inputs with a sha256 are kept")
        raise Problem(422, "nothing-stored", "No report stored",
                      f"no report could be stored: {shown}{more}; {kept}", errors=errors,
                      **result.model_dump())
    response.status_code = status
    return result
