"""Logging for `rua serve`: human text or one JSON object per line, each line with its request id.

The request id lives in a context variable set by the request middleware, and a filter on
the handler copies it onto every record, so any line written while a request is handled
(by Rua, SQLAlchemy or uvicorn) can be traced back to it without passing ids around.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

NO_REQUEST = "-"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = ["levelname", "name", "message", "request_id"]
# uvicorn adds a copy of some messages with terminal colour codes; noise in a log collector
JSON_SKIPPED = [*RESERVED_ATTRS, "color_message"]

request_id_var: ContextVar[str | None] = ContextVar("rua_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id ('-' outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or NO_REQUEST
        return True


def log_formatter(log_format: Literal["text", "json"]) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "name": "logger"},
                             timestamp="time", reserved_attrs=JSON_SKIPPED)
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str, log_format: Literal["text", "json"]) -> None:
    """Send every logger's records, uvicorn's included, through one handler on stderr.

    Run before uvicorn starts, which is then told to leave logging alone (`log_config=None`)
    and to write no access log of its own: the request middleware writes one line per
    request, with the request id and duration uvicorn does not know.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(log_format))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers would write a second, unformatted copy
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # warnings (deprecations from libraries, say) become log lines, so JSON output stays JSON
    logging.captureWarnings(True)
