"""Per-request id, access log line and metrics, as a pure ASGI middleware.

Pure ASGI (not `BaseHTTPMiddleware`) so that streamed responses and large uploads pass
through untouched: this only reads the scope and wraps `send` to learn the status and add
the `X-Request-ID` header. Nothing of the request's headers, cookies or tokens is logged.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.log_config import request_id_var
from app.metrics import Metrics

access_log = logging.getLogger("rua.access")

REQUEST_ID_HEADER = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# anything else is counted as "OTHER", so a client cannot grow the metric label sets
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
UNMATCHED_ROUTE = "unmatched"


def request_id_from(headers: Headers) -> str:
    """The caller's id when it is safe to log and echo (so a proxy's id carries through),
    else a new one."""
    incoming = headers.get(REQUEST_ID_HEADER)
    if incoming is not None and VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/reports/{report_id}`), never the raw path,
    so metric labels stay few however many ids are requested."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        status = 500
        response_started = False
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                headers = MutableHeaders(raw=list(message.get("headers", [])))
                headers[REQUEST_ID_HEADER] = request_id
                message = {**message, "headers": headers.raw}
            await send(message)

        token = request_id_var.set(request_id)
        try:
            with self.metrics.bound():
                await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # The error handler outside this middleware answers and logs it; the request id
            # stays set so that line carries it too (uvicorn runs each request in its own task,
            # so it goes no further).
            if isinstance(exc, HTTPException) and not response_started:
                status = exc.status_code
            self._record(scope, status, started)
            raise
        self._record(scope, status, started)
        request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, started: float) -> None:
        seconds = time.perf_counter() - started
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
        self.metrics.observe_request(method, route_template(scope), status, seconds)
        client = scope.get("client")
        address = client[0] if client else "-"
        # the path as sent, still percent-encoded: a decoded %0A could forge a log line
        raw_path = scope.get("raw_path")
        path = raw_path.decode("ascii", "replace") if isinstance(raw_path, bytes) else scope["path"]
        duration_ms = round(seconds * 1000, 1)
        access_log.info("%s %s %d %.1fms %s", scope["method"], path, status, duration_ms, address,
                        extra={"method": scope["method"], "path": path, "status": status,
                               "duration_ms": duration_ms, "client": address})
