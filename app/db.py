"""Database engines for SQLite (embedded default) and PostgreSQL (production).

SQLite is set up for a service that ingests while it serves: WAL so readers never wait for
the writer, a generous busy timeout so concurrent writers queue instead of failing, full
synchronous commits because an IMAP message is archived only once its report is durable,
and `BEGIN IMMEDIATE` on request so a writer takes its lock before it reads what it will
decide on.

Some writes need not wait for the disk: a transaction opened with `lazy_commit` returns from
its commit before the commit is flushed (SQLite: synchronous=NORMAL for that transaction;
PostgreSQL: synchronous_commit off). Both logs are written in order, so the next durable
commit makes it durable too, and a crash in between can only lose it, never corrupt the
database. It is for bookkeeping whose loss the next pass repairs, such as an input's
"processing" and "finished" marks, and it spares each small input two disk flushes.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url

BEGIN_MODE = "rua_begin"
"""Execution option: "IMMEDIATE" makes a SQLite transaction take the write lock up front."""
LAZY_COMMIT = "rua_lazy_commit"
"""Execution option: True lets this transaction's commit return before it is on disk."""


def create_db_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # JIT compiling a plan costs 100-250 ms, more than the API's grouped queries take to
        # run; PostgreSQL's default cost threshold switches it on for exactly those queries
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                               connect_args={"options": "-c jit=off"})

        @event.listens_for(engine, "begin")
        def _begin_postgresql(connection: Connection) -> None:
            if connection.get_execution_options().get(LAZY_COMMIT):
                connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")

        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun explicitly below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()
        _record.info["synchronous"] = "FULL"

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        # the level in force at COMMIT is the one that counts; it cannot change inside a transaction
        level = "NORMAL" if options.get(LAZY_COMMIT) else "FULL"
        info = connection.connection.info
        if info.get("synchronous") != level:
            connection.exec_driver_sql(f"PRAGMA synchronous={level}")
            info["synchronous"] = level
        mode = options.get(BEGIN_MODE, "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


@contextmanager
def writer_turn(engine: Engine) -> Iterator[None]:
    """Wait for this process's turn to write a long SQLite transaction, in a queue kept by the
    kernel (an exclusive `flock` beside the database), so that the next writer starts the moment
    one commits. SQLite's own busy handler sleeps instead, ever longer up to 100 ms, and
    processes that take turns for every write group would spend a third of their time asleep.
    The collector's write groups and the judge's batches take turns here; other writers
    (uploads, marks) still wait through SQLite's lock, which this does not replace. A database
    in memory, or PostgreSQL, needs no turn."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with _turn_lock, open(f"{database}-writers.lock", "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


_turn_lock = threading.Lock()
"""flock is per open file: threads of one process queue here first."""


@contextmanager
def lazy_commit(engine: Engine) -> Iterator[Connection]:
    """A transaction whose commit may reach the disk with the next durable one (see above)."""
    with engine.connect() as conn:
        conn.execution_options(**{LAZY_COMMIT: True})
        with conn.begin():
            yield conn


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine (and pool) per database URL for the life of the process."""
    return create_db_engine(url)


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    import migrations

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = url
    return config


def upgrade_database(url: str) -> None:
    """Apply every pending migration (what `rua db upgrade` does)."""
    from alembic import command

    command.upgrade(_alembic_config(url), "head")


def schema_status(engine: Engine) -> tuple[str | None, str]:
    """(revision the database is at, revision the code expects)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head or ""


class SchemaNotReady(RuntimeError):
    """The database is missing tables or migrations; `rua db upgrade` fixes it."""


def require_current_schema(engine: Engine) -> None:
    current, head = schema_status(engine)
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        state = "is empty" if current is None else f"is at revision {current}"
        raise SchemaNotReady(f"the database {where} {state}, but this Rua needs revision {head}: "
                             "run `rua db upgrade`")
