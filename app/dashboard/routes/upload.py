"""Uploading reports from the browser: the same pipeline and the same answer as the API's
`POST /api/v1/reports`, said as a page.

The form posts multipart data with the session's CSRF token; every file goes through
`IngestPipeline.ingest_stream` (kept first, then parsed, so nothing sent is lost) and the
outcome is the API's `UploadResult`, so the page shows what the API would have answered:
new reports, duplicates, and what was quarantined and why.
"""

from __future__ import annotations

import logging
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.api.routes.report_upload import UploadResult, _result
from app.dashboard.templating import render
from app.deps import CsrfCheckedDep, PipelineDep, SettingsDep, SignedInDep
from app.metrics import observe_ingest
from app.problems import Problem
from app.upload_body import clean_filename
from ingest.pipeline import IngestPipeline, InputOutcome

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

FILE_FIELD = "file"


def _refuse_oversized(request: Request, settings: SettingsDep) -> None:
    """Before the form is read: an upload declared larger than the API would take is refused
    unread, as the API refuses it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_upload_bytes:
        raise Problem(413, "upload-too-large", "Upload too large",
                      f"The upload is larger than the limit of {settings.max_upload_bytes} bytes "
                      "(RUA_MAX_UPLOAD_BYTES); nothing was kept.", headers={"Connection": "close"})


def _ingest_files(pipeline: IngestPipeline, files: list[tuple[str, int, BinaryIO]]) -> UploadResult:
    """Blocking: runs in a worker thread, as the API's upload does."""
    received: list[tuple[str, int, InputOutcome]] = []
    for filename, size, stream in files:
        stream.seek(0)
        outcome = pipeline.ingest_stream(stream, f"upload:{filename}")
        observe_ingest(outcome)
        log.info("dashboard upload %s (%d bytes, sha256 %s): %s", filename, size, outcome.sha256,
                 outcome.status)
        received.append((filename, size, outcome))
    return _result(received)


def _page(request: Request, result: UploadResult | None = None, error: str | None = None,
          status_code: int = 200) -> Response:
    return render(request, "upload.html", {"title": "Upload reports", "active": "reports", "result": result,
                                           "error": error}, status_code=status_code)


@router.get("/upload")
def upload_form(request: Request, _: SignedInDep) -> Response:
    return _page(request)


@router.post("/upload")
async def upload(request: Request, settings: SettingsDep, pipeline: PipelineDep,
                 _size: Annotated[None, Depends(_refuse_oversized)], _user: CsrfCheckedDep) -> Response:
    form = await request.form()  # read once by the CSRF check; this is the cached copy
    files = [(clean_filename(item.filename) or f"part-{number}", item.size or 0, item.file)
             for number, item in enumerate(form.getlist(FILE_FIELD), 1)
             if isinstance(item, UploadFile) and (item.filename or item.size)]
    if not files:
        return _page(request, error="Choose at least one file to upload.", status_code=422)
    if sum(size for _, size, _ in files) > settings.max_upload_bytes:
        limit = settings.max_upload_bytes
        return _page(request, error=f"The files are larger than the limit of {limit} bytes "
                                    "(RUA_MAX_UPLOAD_BYTES); nothing was kept.", status_code=413)
    try:
        result = await run_in_threadpool(_ingest_files, pipeline, files)
    except (SQLAlchemyError, OSError) as exc:
        log.error("dashboard upload failed: %s: %s", type(exc).__name__, exc)
        return _page(request, error="The server could not store the upload (database or disk unavailable); "
                                    "try again later. Files already received are kept and "
                                    "`rua ingest --retry-failed` picks them up.", status_code=503)
    return _page(request, result=result)
