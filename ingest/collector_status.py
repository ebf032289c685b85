"""What each mailbox's collector is doing, kept in memory and written to the store.

The store copy lets /api/v1/collector and /metrics show a collector that runs in another
process (`rua collect`, a cron `rua poll`). Writing it is best effort: when the database is
the thing that is down, the collector must go on (and retry), and the in-memory copy, which
`rua serve` shows for its own collector, still tells the truth.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.expression import Executable

from app.models import CollectorMailbox, table_of

log = logging.getLogger(__name__)
TABLE = table_of(CollectorMailbox)
COUNTERS = ("ingested", "invalid", "deferred")


@dataclass(slots=True)
class MailboxStatus:
    name: str
    state: str = "starting"
    updated_at: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_reason: str | None = None
    last_error_at: datetime | None = None
    next_attempt_at: datetime | None = None
    backlog: int | None = None
    ingested: int = 0
    invalid: int = 0
    deferred: int = 0


class StatusBoard:
    """The statuses of the mailboxes this process collects from; thread-safe."""

    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._statuses: dict[str, MailboxStatus] = {}
        self._added: dict[str, dict[str, int]] = {}
        """counts not yet added to the stored row (kept while the database is unwritable)"""

    def register(self, name: str) -> None:
        """Start from the stored state, so counts and the last success carry over restarts."""
        stored = None
        if self.engine is not None:
            try:
                stored = next((s for s in stored_statuses(self.engine) if s.name == name), None)
            except SQLAlchemyError:
                stored = None
        with self._lock:
            status = MailboxStatus(name)
            if stored is not None:
                status.last_success_at = stored.last_success_at
                for counter in COUNTERS:
                    setattr(status, counter, getattr(stored, counter))
            self._statuses.setdefault(name, status)
            self._added.setdefault(name, dict.fromkeys(COUNTERS, 0))

    def snapshot(self) -> list[MailboxStatus]:
        with self._lock:
            return [dataclasses.replace(status) for status in self._statuses.values()]

    def get(self, name: str) -> MailboxStatus:
        with self._lock:
            return dataclasses.replace(self._statuses[name])

    def update(self, name: str, **changes: Any) -> None:
        """Set fields; counters given as `add_ingested=` etc. are added, not set."""
        with self._lock:
            status = self._statuses[name]
            for key, value in changes.items():
                if key.startswith("add_"):
                    counter = key[4:]
                    setattr(status, counter, getattr(status, counter) + value)
                    self._added[name][counter] += value
                else:
                    setattr(status, key, value)
            status.updated_at = datetime.now(UTC)
            row = dataclasses.asdict(status)
            added = dict(self._added[name])
        if self._write(row, added):
            with self._lock:
                for counter, value in added.items():
                    self._added[name][counter] -= value

    def _write(self, row: dict[str, Any], added: dict[str, int]) -> bool:
        if self.engine is None:
            return False
        try:
            with self.engine.begin() as conn:
                conn.execute(_upsert(conn.dialect.name), {**row, **{f"add_{k}": v for k, v in added.items()}})
        except SQLAlchemyError as exc:
            log.debug("collector status of %s not stored: %s", row["name"], type(exc).__name__)
            return False
        return True


def stored_statuses(engine: Engine) -> list[MailboxStatus]:
    """Every mailbox state the store holds, as written by any process; counters are lifetime."""
    with engine.connect() as conn:
        rows = conn.execute(select(TABLE).order_by(TABLE.c.name)).mappings().all()
    fields = {f.name for f in dataclasses.fields(MailboxStatus)}
    # the columns' type (sqlmodel's UTCDateTime) gives datetimes back in UTC, on SQLite too
    return [MailboxStatus(**{key: value for key, value in row.items() if key in fields}) for row in rows]


@cache
def _upsert(dialect: str) -> Executable:
    insert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(TABLE)
    plain = [c.name for c in TABLE.columns if c.name not in (*COUNTERS, "id")]
    statement = insert.values({**{name: bindparam(name) for name in plain},
                               **{name: bindparam(f"add_{name}") for name in COUNTERS}})
    return statement.on_conflict_do_update(
        index_elements=[TABLE.c.name],
        set_={**{name: statement.excluded[name] for name in plain if name != "name"},
              **{name: TABLE.c[name] + statement.excluded[name] for name in COUNTERS}})


def current_statuses(engine: Engine, board: StatusBoard | None) -> list[MailboxStatus]:
    """The stored states, with this process's own (fresher, and kept even when the store
    could not be written) in place of theirs."""
    live = {status.name: status for status in board.snapshot()} if board is not None else {}
    try:
        stored = {status.name: status for status in stored_statuses(engine)}
    except SQLAlchemyError:
        if not live:
            raise
        stored = {}
    merged = stored | live
    return [merged[name] for name in sorted(merged)]
