"""Ingest many small inputs at once, in worker processes: how a mailbox backlog is drained fast.

A small report e-mail costs about 12 ms to ingest, nearly all of it Python (MIME parsing,
unpacking, a few SQL statements) that threads cannot overlap. Worker processes, each with its
own pipeline and database connection, can: the store already serialises what must be
serialised (one writer per report identity, SQLite's single write lock). Each input is still
ingested exactly as `IngestPipeline.ingest_stream` does it, kept first and committed before
its outcome comes back, so the caller's "move only what is stored" rule holds unchanged.
"""

from __future__ import annotations

import io
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline, InputOutcome


@dataclass(frozen=True, slots=True)
class StoreFailure:
    """The store could not take an input (database or disk): it must stay where it came from."""

    message: str


class IngestWorkers:
    """A pool of `workers` processes, started on first use and kept until `close`."""

    def __init__(self, database_url: str, data_dir: Path, limits: UnpackLimits, workers: int,
                 redact_local_parts: bool = False) -> None:
        self.database_url = database_url
        self.redact_local_parts = redact_local_parts
        self.data_dir = data_dir
        self.limits = limits
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def ingest(self, inputs: list[tuple[bytes, str]]) -> list[InputOutcome | StoreFailure]:
        """Each (bytes, source) ingested; outcomes in the same order."""
        pool = self._started()
        futures = [pool.submit(_ingest, body, source) for body, source in inputs]
        results: list[InputOutcome | StoreFailure] = []
        for future in futures:
            try:
                results.append(future.result())
            except BrokenProcessPool:
                self._discard(pool)
                results.append(StoreFailure("an ingest worker process stopped unexpectedly"))
        return results

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _started(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawned, not forked: the parent runs threads (collectors, the web server)
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start, initargs=(self.database_url, str(self.data_dir), self.limits,
                              self.redact_local_parts))
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)


_pipeline: IngestPipeline | None = None


def _start(database_url: str, data_dir: str, limits: UnpackLimits, redact_local_parts: bool) -> None:
    global _pipeline
    from app.db import create_db_engine

    _pipeline = IngestPipeline(create_db_engine(database_url), Path(data_dir), limits, redact_local_parts)
    _pipeline.parse_workers = 1  # already one of several processes: parse large reports serially


def _ingest(body: bytes, source: str) -> InputOutcome | StoreFailure:
    assert _pipeline is not None
    return ingest_one(_pipeline, body, source)


def ingest_one(pipeline: IngestPipeline, body: bytes, source: str) -> InputOutcome | StoreFailure:
    """One input, with a failing store answered rather than raised (not every driver
    exception survives pickling back from a worker)."""
    try:
        return pipeline.ingest_stream(io.BytesIO(body), source)
    except (SQLAlchemyError, OSError) as exc:
        first_line = next(iter(str(exc).splitlines()), "")[:300]
        return StoreFailure(f"{type(exc).__name__}: {first_line}")
