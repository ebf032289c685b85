"""app.concurrent_reads on both databases: results in order, reads truly at once, failures
raised after every read has given its connection back."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from app.concurrent_reads import Read, read_concurrently


def test_results_come_in_the_order_the_reads_were_given(engine: Engine) -> None:
    def count(n: int) -> Read:
        return lambda conn: conn.execute(text(f"SELECT {n} + 1")).scalar_one()

    assert read_concurrently(engine, *(count(n) for n in range(6))) == [1, 2, 3, 4, 5, 6]
    assert read_concurrently(engine) == []


def test_the_reads_run_at_the_same_time_on_connections_of_their_own(engine: Engine) -> None:
    """Each read waits until all three are inside a connection: run one after another, the
    barrier would time out."""
    barrier = threading.Barrier(3, timeout=10)
    seen: list[tuple[str, int]] = []

    def read(conn: Connection) -> int:
        barrier.wait()
        seen.append((threading.current_thread().name, id(conn.connection.dbapi_connection)))
        return int(conn.execute(text("SELECT 7")).scalar_one())

    assert read_concurrently(engine, read, read, read) == [7, 7, 7]
    assert len({thread for thread, _ in seen}) == 3
    assert len({connection for _, connection in seen}) == 3


def test_a_failing_read_fails_the_whole_once_the_others_are_done(engine: Engine) -> None:
    done = threading.Event()

    def slow(conn: Connection) -> int:
        done.wait(5)
        return 1

    def failing(conn: Connection) -> int:
        done.set()
        conn.execute(text("SELECT * FROM no_such_table"))
        return 2

    checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="no_such_table"):
        read_concurrently(engine, failing, slow)
    assert engine.pool.checkedout() == checked_out  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="no_such_table"):
        read_concurrently(engine, slow, failing)
    assert engine.pool.checkedout() == checked_out  # type: ignore[attr-defined]


def test_reads_take_turns_when_the_pool_has_one_connection(database_url: str) -> None:
    """Each read holds a connection only while it runs: with a pool of one, the reads
    queue for it in turn."""
    from sqlalchemy import create_engine

    small = create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=5)
    try:
        assert read_concurrently(small, *([lambda conn: conn.execute(text("SELECT 1")).scalar_one()] * 3)) \
            == [1, 1, 1]
    finally:
        small.dispose()


def test_reads_of_equal_weight_run_without_parallel_workers(engine: Engine) -> None:
    """On PostgreSQL, `parallel_workers=False` holds for the reads themselves only: the
    connections go back to the pool with the server's own setting."""
    if engine.dialect.name != "postgresql":
        pytest.skip("parallel workers are PostgreSQL's")

    def workers(conn: Connection) -> str:
        return str(conn.execute(text("SHOW max_parallel_workers_per_gather")).scalar_one())

    default = read_concurrently(engine, workers)[0]
    assert default != "0"
    assert read_concurrently(engine, workers, workers, parallel_workers=False) == ["0", "0"]
    assert read_concurrently(engine, *[workers] * 10) == [default] * 10  # every pooled connection
