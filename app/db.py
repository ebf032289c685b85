"""Database engines for SQLite (embedded default) and PostgreSQL (production).

SQLite is set up for a service that ingests while it serves: WAL so readers never wait for
the writer, a generous busy timeout so concurrent writers queue instead of failing, full
synchronous commits because an IMAP message is archived only once its report is durable,
and `BEGIN IMMEDIATE` on request so a writer takes its lock before it reads what it will
decide on.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url

BEGIN_MODE = "rua_begin"
"""Execution option: "IMMEDIATE" makes a SQLite transaction take the write lock up front."""


def create_db_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # JIT compiling a plan costs 100-250 ms, more than the API's grouped queries take to
        # run; PostgreSQL's default cost threshold switches it on for exactly those queries
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                             connect_args={"options": "-c jit=off"})
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

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_MODE, "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


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
