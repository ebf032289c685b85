"""The IMAP collector's state, per mailbox: is it draining, waiting, failing, and why."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from sqlalchemy.exc import SQLAlchemyError

from app.deps import EngineDep, ReadAccess, SettingsDep
from app.problems import Problem, problem_responses
from ingest.collector_status import StatusBoard, current_statuses

router = APIRouter(prefix="/api/v1/collector", tags=["collector"])


_EXAMPLE: JsonDict = {
    "name": "dmarc@example.com@imap.example.com/INBOX", "configured": True, "collected_here": True,
    "state": "idle", "updated_at": "2026-11-28T10:00:05Z", "last_success_at": "2026-11-28T10:00:05Z",
    "last_error": None, "last_error_reason": None, "last_error_at": None, "next_attempt_at": None,
    "backlog": 0, "ingested": 5120, "invalid": 3, "deferred": 12}


class MailboxState(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_EXAMPLE]})

    name: str = Field(description="the mailbox's `name`, or user@host/folder")
    configured: bool = Field(description="in this server's settings (a stored state may outlive them)")
    collected_here: bool = Field(description="collected by this process (`rua serve`), not another")
    state: str = Field(description="connecting, draining, idle (IMAP IDLE), waiting (polling), backoff "
                                   "(after an error, until next_attempt_at), stopped, or not started")
    updated_at: datetime | None = None
    last_success_at: datetime | None = Field(None, description="when the folder was last drained completely")
    last_error: str | None = Field(None, description="the last error, in words; cleared by the next success")
    last_error_reason: str | None = Field(None,
        description="login_failed, tls_untrusted, folder_missing, connect_failed, timeout, server_error, "
                    "database_unavailable or internal_error")
    last_error_at: datetime | None = None
    next_attempt_at: datetime | None = None
    backlog: int | None = Field(None, description="messages still waiting in the folder at the last look")
    ingested: int = Field(0, description="messages archived after their reports were stored (or known)")
    invalid: int = Field(0, description="messages moved to the invalid folder (their bytes are quarantined)")
    deferred: int = Field(0, description="failure or TLS report messages left in the folder for later")


class CollectorState(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"mailboxes": [_EXAMPLE]}]})

    mailboxes: list[MailboxState] = Field(description="every configured mailbox, and any other whose "
                                                      "state is stored")


def get_board(request: Request) -> StatusBoard | None:
    return getattr(request.app.state, "collector_board", None)


@router.get("", summary="The IMAP collector's state per mailbox", responses=problem_responses(401, 403, 503))
def collector_state(_: ReadAccess, engine: EngineDep, settings: SettingsDep,
                    board: Annotated[StatusBoard | None, Depends(get_board)]) -> CollectorState:
    configured = {mailbox.label for mailbox in settings.all_mailboxes()}
    here = {status.name for status in board.snapshot()} if board is not None else set()
    try:
        statuses = current_statuses(engine, board)
    except SQLAlchemyError as exc:
        raise Problem(503, "database-unavailable", "Service Unavailable",
                      "the store cannot be read; try again later", headers={"Retry-After": "30"}) from exc
    mailboxes = [MailboxState(**dataclasses.asdict(status), configured=status.name in configured,
                              collected_here=status.name in here) for status in statuses]
    # configured, but no collector has reported on it yet
    known = {status.name for status in statuses}
    mailboxes += [MailboxState(name=name, configured=True, collected_here=False, state="not started")
                  for name in sorted(configured - known)]
    return CollectorState(mailboxes=mailboxes)
