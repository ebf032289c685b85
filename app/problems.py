"""Every error the API answers is an RFC 9457 problem document (`application/problem+json`).

Scripts get one shape to read whatever went wrong: `type` (a stable URI to branch on),
`title`, `status`, `detail` (what happened, for a person), plus fields of the problem's own,
such as the `errors` of a refused upload or the `sha256` its bytes were kept under.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.status import HTTP_422_UNPROCESSABLE_CONTENT, HTTP_500_INTERNAL_SERVER_ERROR

from app.log_config import current_request_id

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "urn:rua:problem:"


class ProblemDocument(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "type": "urn:rua:problem:unauthorized", "title": "Unauthorized", "status": 401,
        "detail": "send an API token as 'Authorization: Bearer <token>'"}]})

    type: str = Field(description="a URI naming the kind of problem; 'about:blank' for plain HTTP errors")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, kind: str, title: str, detail: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.type = PROBLEM_BASE + kind
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_response(request: Request, status: int, type_: str, title: str, detail: str | None,
                     headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    """The problem document; or, for a person on a dashboard page, the same said as a page."""
    page = getattr(request.app.state, "error_page", None)
    if page is not None and page.wanted(request):
        return page.render(request, status, title, detail, headers)  # type: ignore[no-any-return]
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring problem documents for these statuses."""
    return {status: {"model": ProblemDocument, "content": {MEDIA_TYPE: {}}} for status in statuses}


def _problem_media_in_schema(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """OpenAPI that shows error answers as what they are: `application/problem+json` only.

    FastAPI files a response `model` under the route's JSON media type; errors are never
    sent as plain `application/json`, so the schema is moved where clients will meet it.
    """
    stock = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = stock()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    for status, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        if status[:1] in "45" and "application/json" in content:
                            content[MEDIA_TYPE] = content.pop("application/json")
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def install(app: FastAPI) -> None:
    app.openapi = _problem_media_in_schema(app)  # type: ignore[method-assign]

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(request, exc.status, exc.type, exc.title, exc.detail, exc.headers,
                                **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        from http import HTTPStatus

        title = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ \
            else "Error"
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem_response(request, exc.status_code, "about:blank", title, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(error.get("loc", ())), "msg": error.get("msg", ""),
                   "type": error.get("type", "")} for error in exc.errors()]
        detail = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in errors)
        return problem_response(request, HTTP_422_UNPROCESSABLE_CONTENT, PROBLEM_BASE + "invalid-request",
                                "Invalid request", detail, errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        request_id = current_request_id()
        # Starlette answers this one outside the request-id middleware: name the id here
        return problem_response(request, HTTP_500_INTERNAL_SERVER_ERROR, PROBLEM_BASE + "internal-error",
                                "Internal server error",
                                "the server failed on this request; it is logged with the request id",
                                headers={"X-Request-ID": request_id} if request_id else None,
                                request_id=request_id)
