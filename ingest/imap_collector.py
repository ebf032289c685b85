"""Drain rua= mailboxes into the store, for ever, without losing or duplicating a report.

The order of things is what makes it safe: a message is fetched, ingested through the same
pipeline as a file (which keeps its bytes first and commits its reports), and only then
moved: to the archive folder when its reports are stored (new or already known), to the
invalid folder when nothing in it could be read (its bytes are in the quarantine). A crash
or disconnect between the commit and the move leaves the message in place; the next pass
ingests it again, finds it is a duplicate, and archives it, so a report is stored exactly
once whatever fails when. When the store cannot be written, nothing is moved; the error is
shown, and the mailbox is retried with exponential backoff and jitter, as after any network
or server error. Nothing is ever deleted from the server except by MOVE's own expunge.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ingest.collector_status import StatusBoard
from ingest.imap_mailbox import FETCH_BYTES, MailboxError, MailboxSession
from ingest.ingest_workers import GROUP_INPUTS, IngestWorkers, StoreFailure, ingest_group
from ingest.mailbox_config import MailboxConfig
from ingest.pipeline import IngestPipeline, InputOutcome

log = logging.getLogger(__name__)

IDLE_RENEW_SECONDS = 25 * 60
"""RFC 2177: re-issue IDLE before the server's 30-minute inactivity logout."""
FIRST_BACKOFF_SECONDS = 1.0


@dataclass(slots=True)
class PassResult:
    """What one pass over a mailbox did."""

    mailbox: str
    archived: int = 0
    invalid: int = 0
    deferred: int = 0
    remaining: int = 0
    error: str | None = None
    reason: str | None = None
    outcomes: list[InputOutcome] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


class StoreUnavailable(Exception):
    """The store could not take a message; it stays in the mailbox for a later attempt."""


class MailboxCollector:
    """Collects from one mailbox: `run_pass` once (for cron), or `run` until stopped."""

    def __init__(self, config: MailboxConfig, pipeline: IngestPipeline, board: StatusBoard,
                 observe: Callable[[InputOutcome], None] | None = None,
                 workers: IngestWorkers | None = None) -> None:
        self.config = config
        self.pipeline = pipeline
        self.workers = workers
        self.board = board
        self.observe = observe
        self.name = config.label
        self.failures = 0
        board.register(self.name)

    # -- one pass -----------------------------------------------------------------------------

    def run_pass(self) -> PassResult:
        """Connect, drain the folder, disconnect; errors are reported, not raised."""
        result = PassResult(self.name)
        self.board.update(self.name, state="connecting")
        try:
            with MailboxSession(self.config) as session:
                self._drain(session, result)
        except (MailboxError, StoreUnavailable) as exc:
            self._failed(result, exc)
            return result
        self.board.update(self.name, state="stopped")
        return result

    # -- for ever -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Drain, then wait for mail (IDLE or polling), until `stop` is set; reconnect after any
        error with exponential backoff and jitter."""
        while not stop.is_set():
            result = PassResult(self.name)
            self.board.update(self.name, state="connecting")
            try:
                with MailboxSession(self.config) as session:
                    self._drain(session, result)
                    self.failures = 0
                    self._wait_and_drain(session, stop)
            except (MailboxError, StoreUnavailable) as exc:
                delay = self._failed(result, exc)
                stop.wait(delay)
            except Exception as exc:  # a bug must not end collection: report it and go on
                log.exception("mailbox %s: unexpected error", self.name)
                delay = self._failed(result, exc, reason="internal_error")
                stop.wait(delay)
        self.board.update(self.name, state="stopped", next_attempt_at=None)

    def _wait_and_drain(self, session: MailboxSession, stop: threading.Event) -> None:
        idle = self.config.idle and session.can_idle
        while not stop.is_set():
            if session.mail_arrived():  # while draining: no IDLE would tell of it
                self._drain(session, PassResult(self.name))
                continue
            self.board.update(self.name, state="idle" if idle else "waiting", next_attempt_at=None)
            if idle:
                self._idle(session, stop)
            else:
                stop.wait(self.config.poll_interval)
                if not stop.is_set():
                    session.noop()
            if not stop.is_set():
                self._drain(session, PassResult(self.name))

    def _idle(self, session: MailboxSession, stop: threading.Event) -> None:
        """IDLE in short slices, so a stop is seen within a second; return when mail may have
        come, or after poll_interval anyway (a safety net for a change announced between the
        last search and the start of IDLE)."""
        deadline = time.monotonic() + min(self.config.poll_interval, IDLE_RENEW_SECONDS)
        while not stop.is_set() and time.monotonic() < deadline:
            if session.wait_for_mail(1.0):
                return

    # -- draining -----------------------------------------------------------------------------

    def _drain(self, session: MailboxSession, result: PassResult) -> None:
        uids = session.pending_uids()
        self.board.update(self.name, state="draining", backlog=len(uids))
        if uids:
            log.info("mailbox %s: %d message(s) waiting", self.name, len(uids))
        started, done = time.monotonic(), 0
        size = self.config.batch_size
        for start in range(0, len(uids), size):
            batch = uids[start:start + size]
            self._batch(session, batch, result)
            done += len(batch)
            result.remaining = len(uids) - done
            self.board.update(self.name, backlog=result.remaining)
            if len(uids) > size:
                rate = done / max(time.monotonic() - started, 1e-6)
                log.info("mailbox %s: %d/%d done (%d archived, %d invalid, %d deferred), %.0f messages/s",
                         self.name, done, len(uids), result.archived, result.invalid, result.deferred, rate)
        self.board.update(self.name, last_success_at=datetime.now(UTC), last_error=None,
                          last_error_reason=None, backlog=result.remaining)

    def _batch(self, session: MailboxSession, uids: list[int], result: PassResult) -> None:
        archive: list[int] = []
        invalid: list[int] = []
        deferred: list[int] = []
        failure: StoreUnavailable | None = None

        def settle(messages: list[tuple[int, bytes]]) -> None:
            nonlocal failure
            for uid, outcome in self._ingest_all(messages):
                if isinstance(outcome, StoreUnavailable):
                    failure = failure or outcome
                elif outcome.status == "ok":
                    archive.append(uid)
                elif outcome.status == "deferred":
                    deferred.append(uid)
                else:  # failed, or partial: something in it could not be read
                    log.warning("mailbox %s: message UID %d moved to %s: %s", self.name, uid,
                                self.config.invalid, outcome.describe_errors())
                    invalid.append(uid)
                if not isinstance(outcome, StoreUnavailable):
                    result.outcomes.append(outcome)

        try:
            # ingested a few at a time, as fetched: a batch of large messages is not held whole
            pending: list[tuple[int, bytes]] = []
            pending_bytes = 0
            for message in session.fetch(uids, self.pipeline.limits.max_input_bytes):
                if message.body is None:
                    log.error("mailbox %s: message UID %d is %d bytes, over max_input_bytes; moved to %s "
                              "without being read", self.name, message.uid, message.size, self.config.invalid)
                    invalid.append(message.uid)
                    continue
                pending.append((message.uid, message.body))
                pending_bytes += len(message.body)
                if pending_bytes >= FETCH_BYTES:
                    settle(pending)
                    pending, pending_bytes = [], 0
                if failure is not None:
                    break
            if pending and failure is None:
                settle(pending)
            if failure is not None:
                raise failure
        finally:
            # what was committed is moved even when the batch stopped half-way
            session.move(archive, self.config.archive)
            session.move(invalid, self.config.invalid)
            session.mark_deferred(deferred)
            result.archived += len(archive)
            result.invalid += len(invalid)
            result.deferred += len(deferred)
            self.board.update(self.name, add_ingested=len(archive), add_invalid=len(invalid),
                              add_deferred=len(deferred))

    def _ingest_all(self, messages: list[tuple[int, bytes]]) -> Iterator[tuple[int, InputOutcome |
                                                                                StoreUnavailable]]:
        """Each message through the pipeline: in the worker processes when there are several,
        else here, stopping at the first store failure (the rest would fail the same way)."""
        folder = self.config.folder
        inputs = [(body, f"imap://{self.config.user}@{self.config.host}/{folder};UID={uid}")
                  for uid, body in messages]
        results: Iterable[InputOutcome | StoreFailure]
        if self.workers is not None and len(messages) > 2:
            results = self.workers.ingest(inputs)
        else:
            results = self._ingest_here(inputs)
        for (uid, _), outcome in zip(messages, results, strict=False):
            if isinstance(outcome, StoreFailure):
                yield uid, StoreUnavailable(f"the store cannot take message UID {uid}: "
                                            f"{outcome.message}; it stays in {folder}")
            else:
                self._observe(outcome)
                yield uid, outcome

    def _ingest_here(self, inputs: list[tuple[bytes, str]]) -> Iterator[InputOutcome | StoreFailure]:
        for start in range(0, len(inputs), GROUP_INPUTS):
            outcomes = ingest_group(self.pipeline, inputs[start:start + GROUP_INPUTS])
            yield from outcomes
            if any(isinstance(outcome, StoreFailure) for outcome in outcomes):
                return

    def _observe(self, outcome: InputOutcome) -> None:
        if self.observe is not None:
            self.observe(outcome)

    # -- failures -----------------------------------------------------------------------------

    def _failed(self, result: PassResult, exc: Exception, reason: str | None = None) -> float:
        """Record the error; the delay before the next attempt grows 1, 2, 4 … s up to
        max_backoff, with jitter so that many collectors do not reconnect in step."""
        self.failures += 1
        result.error = str(exc)
        result.reason = reason or (exc.reason if isinstance(exc, MailboxError) else "database_unavailable")
        ceiling = min(self.config.max_backoff, FIRST_BACKOFF_SECONDS * 2 ** (self.failures - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        log.error("mailbox %s: %s (retrying in %.1f s)", self.name, result.error, delay)
        self.board.update(self.name, state="backoff", last_error=result.error[:2000],
                          last_error_reason=result.reason, last_error_at=datetime.now(UTC),
                          next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay))
        return delay


class Collector:
    """All configured mailboxes, each collected by its own thread."""

    def __init__(self, configs: list[MailboxConfig], pipeline: IngestPipeline, board: StatusBoard,
                 observe: Callable[[InputOutcome], None] | None = None,
                 workers: IngestWorkers | None = None) -> None:
        self.board = board
        self.workers = workers
        self.mailboxes = [MailboxCollector(config, pipeline, board, observe, workers) for config in configs]
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for mailbox in self.mailboxes:
            thread = threading.Thread(target=mailbox.run, args=(self.stop_event,),
                                      name=f"collector {mailbox.name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.workers is not None:
            self.workers.close()

    def poll(self) -> list[PassResult]:
        try:
            return [mailbox.run_pass() for mailbox in self.mailboxes]
        finally:
            if self.workers is not None:
                self.workers.close()
