"""Plain DB-API reads and placeholders, for the bulk stages that bypass SQLAlchemy's rows.

Ingest, judging and identification move hundreds of thousands of rows; SQLAlchemy's per-row
result and parameter processing cost more there than the queries, and none of the columns
they read needs conversion. These speak to the cursor of the connection's own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection, Dialect


def placeholder(dialect: Dialect) -> str:
    """The driver's parameter marker: `?` for sqlite3, `%s` for psycopg."""
    return "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"


def fetch_rows(conn: Connection, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
    """Every row of `sql`, as the driver returns them. Without parameters the text goes as it
    is: psycopg would otherwise read any `%` in it as a placeholder."""
    cursor = conn.connection.cursor()
    try:
        if parameters:
            cursor.execute(sql, parameters)
        else:
            cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()
