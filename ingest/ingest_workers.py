"""Ingest many small inputs at once: how a mailbox backlog is drained fast.

Two things make a small report e-mail cheap. Write groups (`IngestPipeline.ingest_group`):
twenty inputs are read first (kept, unpacked, parsed) and then written in one transaction, so
one disk flush and one write of each shared index page serve them all, where one input alone
needed three commits. Worker processes, each with its own pipeline and database connection:
the MIME parsing, unpacking and parsing are Python that threads cannot overlap; one worker
reads its next group while another writes. Groups are for SQLite, whose one write lock makes
writers take turns anyway (`app.db.writer_turn` queues them). On PostgreSQL each input keeps
its own transactions, written side by side. Each input is still judged exactly as
`IngestPipeline.ingest_stream` does it, and committed before its outcome comes back, so the
caller's "move only what is stored" rule holds unchanged.
"""

from __future__ import annotations

import io
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline, InputOutcome

GROUP_INPUTS = 20
"""Most inputs in one write group: one commit for twenty small reports, and few enough that a
group still fits a batch several times over (every worker busy, an IMAP batch moved soon)."""


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
        self.grouped = writes_in_groups(make_url(database_url).get_backend_name())
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def ingest(self, inputs: list[tuple[bytes, str]]) -> list[InputOutcome | StoreFailure]:
        """Each (bytes, source) ingested, in write groups (`IngestPipeline.ingest_group`) of a
        few inputs each, so that every worker has several to take; outcomes in the same order."""
        pool = self._started()
        if self.grouped:  # as many groups for each worker, each of at most GROUP_INPUTS
            count = self.workers * -(-len(inputs) // (self.workers * GROUP_INPUTS))
            size = max(1, -(-len(inputs) // count))
        else:  # one input per task: the workers share the batch evenly
            size = 1
        groups = [inputs[start:start + size] for start in range(0, len(inputs), size)]
        futures = [pool.submit(_ingest, group) for group in groups]
        results: list[InputOutcome | StoreFailure] = []
        for group, future in zip(groups, futures, strict=True):
            try:
                results.extend(future.result())
            except BrokenProcessPool:
                self._discard(pool)
                results.extend([StoreFailure("an ingest worker process stopped unexpectedly")] * len(group))
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


def _ingest(inputs: list[tuple[bytes, str]]) -> list[InputOutcome | StoreFailure]:
    assert _pipeline is not None
    return ingest_group(_pipeline, inputs)


def ingest_one(pipeline: IngestPipeline, body: bytes, source: str) -> InputOutcome | StoreFailure:
    """One input, with a failing store answered rather than raised (not every driver
    exception survives pickling back from a worker)."""
    try:
        return pipeline.ingest_stream(io.BytesIO(body), source)
    except (SQLAlchemyError, OSError) as exc:
        return _store_failure(exc)


def writes_in_groups(backend: str) -> bool:
    """Whether inputs are written in groups on this database: on SQLite only.

    On PostgreSQL the groups of concurrent workers, each holding row locks on the same daily
    totals and addresses to its end, deadlocked more often than not, and groups made to write
    in turn (an advisory lock) drained at 53 messages/s with two workers, against 88 for one
    transaction per input written side by side.
    """
    return backend == "sqlite"


def ingest_group(pipeline: IngestPipeline,
                 inputs: list[tuple[bytes, str]]) -> list[InputOutcome | StoreFailure]:
    """Inputs that stay at their source until stored, in one write group where the database
    `writes_in_groups`, else one by one. Once the store fails, every input not yet answered is
    answered with that failure (none of them was stored, nor tried: they would fail alike)."""
    if not writes_in_groups(pipeline.engine.dialect.name):
        outcomes: list[InputOutcome | StoreFailure] = []
        for body, source in inputs:
            outcome = ingest_one(pipeline, body, source)
            outcomes.append(outcome)
            if isinstance(outcome, StoreFailure):
                return outcomes + [outcome] * (len(inputs) - len(outcomes))
        return outcomes
    try:
        return list(pipeline.ingest_group(inputs))
    except (SQLAlchemyError, OSError) as exc:
        return [_store_failure(exc)] * len(inputs)


def _store_failure(exc: Exception) -> StoreFailure:
    first_line = next(iter(str(exc).splitlines()), "")[:300]
    return StoreFailure(f"{type(exc).__name__}: {first_line}")
