"""Independent reads of one answer, run at the same time on connections of their own.

A dashboard page over a month of a busy domain runs a few queries that do not depend on each
other (the forwarders and the broken signatures; a ranking's details, its groups' classes and
their identities), each grouping a hundred thousand rows or more for a few hundred ms. SQLite
and psycopg release the GIL while a statement runs, so on two cores the page takes about as
long as its longest read instead of the sum of them all.

What it gives up: on SQLite the reads of one connection shared one snapshot (a deferred
transaction); here each read has its own, so a report committed while a page is being read
can count in one of its parts and not yet in another, as it already could on PostgreSQL
(READ COMMITTED: a snapshot per statement). The next request agrees with itself again.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

Read = Callable[[Connection], Any]

_READERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rua-read")
"""Shared by all requests: a read never waits on another read, so the pool cannot deadlock."""


def read_concurrently(engine: Engine, *reads: Read) -> list[Any]:
    """The results of `reads`, in order. If one fails, the others are waited for (their
    connections go back to the pool) and its exception is raised.

    The caller must hold no connection of its own while it waits: with the pool empty,
    the reads would wait behind it for the pool's timeout."""

    def run(read: Read) -> Any:
        with engine.connect() as conn:
            return read(conn)

    futures: list[Future[Any]] = [_READERS.submit(run, read) for read in reads]
    wait(futures)
    return [future.result() for future in futures]
