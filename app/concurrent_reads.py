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


def read_concurrently(engine: Engine, *reads: Read, parallel_workers: bool = True) -> list[Any]:
    """The results of `reads`, in order. If one fails, the others are waited for (their
    connections go back to the pool) and its exception is raised.

    `parallel_workers=False` runs each read in one PostgreSQL process: for reads of about the
    same weight, which fill the cores between them. The forwarding page's two rankings each
    split into PostgreSQL's two default workers put six processes on two cores and took 350
    ms instead of 260 to 330; a sources page's one heavy read beside light ones keeps its
    workers (without them it took 420 ms instead of 360).

    The caller must hold no connection of its own while it waits: with the pool empty,
    the reads would wait behind it for the pool's timeout."""
    one_process = not parallel_workers and engine.dialect.name == "postgresql"

    def run(read: Read) -> Any:
        with engine.connect() as conn:
            if one_process:
                conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
            return read(conn)

    futures: list[Future[Any]] = [_READERS.submit(run, read) for read in reads]
    wait(futures)
    return [future.result() for future in futures]
