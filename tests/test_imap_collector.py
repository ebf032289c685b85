"""The IMAP collector against a real Dovecot, on SQLite and PostgreSQL.

Each test gets a fresh mailbox (a new Dovecot user) and appends real messages with its own
IMAP client; what the collector did is read back from the server's folders and the store.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ingest.collector_status import StatusBoard, stored_statuses
from ingest.imap_collector import Collector, MailboxCollector
from ingest.imap_mailbox import MailboxError, MailboxSession
from ingest.ingest_workers import IngestWorkers, StoreFailure, ingest_one
from ingest.limits import UnpackLimits
from ingest.mailbox_config import MailboxConfig
from ingest.pipeline import IngestPipeline, InputOutcome
from tests import samples
from tests.conftest import count_rows
from tests.imap_server import DovecotServer
from tests.test_unpack import arf_report, tls_email


def crlf(message: bytes) -> bytes:
    """As an IMAP server stores and returns it, so appended and fetched bytes compare equal."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def report_email(report_id: str, records: int = 2, container: str = "gz") -> bytes:
    xml = samples.aggregate_xml([samples.Rec(source_ip=f"192.0.2.{n + 1}") for n in range(records)],
                                report_id=report_id)
    if container == "gz":
        return crlf(samples.email_with([(samples.gz(xml), "application/gzip", f"{report_id}.xml.gz")],
                                       subject=f"Report Domain: example.com Report-ID: {report_id}"))
    if container == "zip":
        return crlf(samples.email_with([(samples.zipped({f"{report_id}.xml": xml}), "application/zip",
                                         f"{report_id}.zip")]))
    return crlf(samples.single_part_email(samples.gz(xml)))


def not_a_report() -> bytes:
    return crlf(samples.email_with([], subject="Lunch on Friday?", body="Shall we meet at noon?"))


def broken_report() -> bytes:
    return crlf(samples.email_with([(b"\x1f\x8b\x08\x00 not gzip after all", "application/gzip",
                                     "r.xml.gz")]))


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Callable[..., MailboxConfig]:
    """A MailboxConfig for a fresh, empty mailbox of this test's own."""
    user = dovecot.new_user()

    def config(**changes: Any) -> MailboxConfig:
        values: dict[str, Any] = {"host": dovecot.host, "port": dovecot.port, "tls": "none", "user": user,
                                  "password": dovecot.password, "batch_size": 5, "poll_interval": 30,
                                  "max_backoff": 0.5, "timeout": 10}
        return MailboxConfig(**(values | changes))

    return config


def reports_in(engine: Engine) -> int:
    return count_rows(engine, "aggregate_report")


def wait_for(condition: Callable[[], bool], seconds: float, what: str,
             context: Callable[[], str] | None = None) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not within {seconds} s: {what}" + (f"\n{context()[-4000:]}" if context else ""))
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def running() -> Iterator[Callable[[Collector], Collector]]:
    started: list[Collector] = []

    def start(collector: Collector) -> Collector:
        collector.start()
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


# -- one pass: where each message goes ------------------------------------------------------

def test_reports_are_stored_then_archived_and_the_rest_sorted(
        dovecot: DovecotServer, mailbox: Callable[..., MailboxConfig], pipeline: IngestPipeline,
        engine: Engine) -> None:
    config = mailbox()
    user = config.user
    stored = [report_email("r1"), report_email("r2", container="zip"), report_email("r3", container="single"),
              report_email("r1")]  # the same report again, in another message (another boundary)
    invalid = [not_a_report(), broken_report()]
    other_kinds = [crlf(arf_report()), crlf(tls_email())]
    for message in stored + invalid + other_kinds[:1]:
        dovecot.append(user, "INBOX", message)
    # set aside by a version that could not parse TLS reports yet: read now all the same
    dovecot.append(user, "INBOX", other_kinds[1], flags=["$RuaDeferred"])

    result = MailboxCollector(config, pipeline, StatusBoard(engine)).run_pass()

    assert result.ok, result.error
    assert (result.archived, result.invalid, result.deferred, result.remaining) == (6, 2, 0, 0)
    assert sorted(dovecot.folder_messages(user, "Archive")) == sorted(stored + other_kinds)  # byte for byte
    assert sorted(dovecot.folder_messages(user, "Invalid")) == sorted(invalid)
    assert dovecot.folder_messages(user, "INBOX") == []
    assert reports_in(engine) == 3
    assert (count_rows(engine, "failure_report"), count_rows(engine, "tls_report")) == (1, 1)
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM original GROUP BY status")).all())
    assert statuses == {"ok": 6, "failed": 2}  # the invalid ones are quarantined

    again = MailboxCollector(config, pipeline, StatusBoard(engine)).run_pass()
    assert again.ok and again.outcomes == [] and (again.archived, again.invalid, again.deferred) == (0, 0, 0)
    [status] = stored_statuses(engine)
    assert (status.name, status.ingested, status.invalid, status.deferred) == (config.label, 6, 2, 0)
    assert status.last_success_at is not None and status.backlog == 0


def test_large_backlog_is_drained_in_batches_by_worker_processes(
        dovecot: DovecotServer, mailbox: Callable[..., MailboxConfig], pipeline: IngestPipeline,
        engine: Engine, database_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = mailbox(batch_size=7)
    messages = [report_email(f"b{number}", records=1) for number in range(30)]
    for message in messages:
        dovecot.append(config.user, "INBOX", message)
    dovecot.append(config.user, "INBOX", not_a_report())
    workers = IngestWorkers(database_url, data_dir, UnpackLimits(), 2)
    with caplog.at_level("INFO", logger="ingest.imap_collector"):
        result = Collector([config], pipeline, StatusBoard(engine), workers=workers).poll()[0]
    assert result.ok and result.archived == 30 and result.invalid == 1
    assert reports_in(engine) == 30 and dovecot.folder_uids(config.user, "INBOX") == []
    assert sorted(dovecot.folder_messages(config.user, "Archive")) == sorted(messages)
    progress = [r.getMessage() for r in caplog.records if "done" in r.getMessage()]
    assert len(progress) == 5 and progress[-1].split(":")[1].strip().startswith("31/31 done")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_corpus_emails_and_attached_reports(dovecot: DovecotServer, mailbox: Callable[..., MailboxConfig],
                                            pipeline: IngestPipeline, engine: Engine, corpus: Path,
                                            tmp_path: Path) -> None:
    """Every real e-mail of the corpus, and every other aggregate file attached to a message as
    reporters send it: each lands where the file pipeline's own verdict on the same bytes says."""
    from tests.test_corpus import manifest

    config = mailbox(batch_size=20)
    appended: dict[int, tuple[bytes, Any]] = {}
    for entry in manifest(corpus):
        data = (corpus / entry.relpath).read_bytes()
        if not entry.relpath.endswith(".eml"):
            if entry.kind != "aggregate":
                continue
            data = samples.email_with([(data, "application/octet-stream", Path(entry.relpath).name)])
        data = crlf(data)
        appended[dovecot.append(config.user, "INBOX", data)] = (data, entry)
    result = MailboxCollector(config, pipeline, StatusBoard(engine)).run_pass()
    assert result.ok, result.error

    # the oracle: the same bytes through the file pipeline, into another store
    from app.db import create_db_engine, upgrade_database

    upgrade_database(f"sqlite:///{tmp_path / 'oracle.db'}")
    oracle = IngestPipeline(create_db_engine(f"sqlite:///{tmp_path / 'oracle.db'}"), tmp_path / "o",
                            UnpackLimits())
    folder_of = {"ok": "Archive", "failed": "Invalid", "partial": "Invalid", "deferred": "INBOX"}
    where = {folder: set(dovecot.folder_messages(config.user, folder)) for folder in ("INBOX", "Archive",
                                                                                       "Invalid")}
    for data, entry in appended.values():
        path = tmp_path / "one.eml"
        path.write_bytes(data)
        verdict: InputOutcome = oracle.ingest_path(path)
        assert data in where[folder_of[verdict.status]], (entry.relpath, verdict.status)
        if entry.kind == "aggregate" and entry.record_count:
            assert data in where["Archive"], entry.relpath
        if entry.kind in ("forensic", "tlsrpt"):
            assert data in where["Archive"], entry.relpath
    assert sum(len(messages) for messages in where.values()) == len({d for d, _ in appended.values()})


# -- waiting for mail -----------------------------------------------------------------------

def test_idle_ingests_a_new_message_within_two_seconds(
        dovecot: DovecotServer, mailbox: Callable[..., MailboxConfig], pipeline: IngestPipeline,
        engine: Engine, running: Callable[[Collector], Collector]) -> None:
    config = mailbox(poll_interval=600)  # only IDLE can explain a quick pick-up
    board = StatusBoard(engine)
    running(Collector([config], pipeline, board))
    wait_for(lambda: board.get(config.label).state == "idle", 10, "the collector to IDLE")
    time.sleep(0.3)
    dovecot.append(config.user, "INBOX", report_email("idle"))
    elapsed = wait_for(lambda: reports_in(engine) == 1, 5, "the new report to be stored")
    assert elapsed < 2.0, elapsed
    wait_for(lambda: dovecot.folder_uids(config.user, "Archive") != [], 5, "the message to be archived")


def test_polling_where_idle_is_not_used(dovecot: DovecotServer, mailbox: Callable[..., MailboxConfig],
                                        pipeline: IngestPipeline, engine: Engine,
                                        running: Callable[[Collector], Collector]) -> None:
    config = mailbox(idle=False, poll_interval=0.5)
    board = StatusBoard(engine)
    running(Collector([config], pipeline, board))
    wait_for(lambda: board.get(config.label).state == "waiting", 10, "the collector to wait")
    dovecot.append(config.user, "INBOX", report_email("polled"))
    wait_for(lambda: reports_in(engine) == 1, 5, "the polled report to be stored")


# -- failures: nothing lost, nothing twice ---------------------------------------------------

class CrashingPipeline(IngestPipeline):
    """Calls `crash` once, right after the n-th input is committed (before it can be moved):
    after its own transactions (PostgreSQL), or after its write group's (SQLite)."""

    def __init__(self, *args: Any, after: int, crash: Callable[[], None]) -> None:
        super().__init__(*args)
        self.after, self.crash, self.seen, self.grouping = after, crash, 0, False

    def ingest_stream(self, *args: Any, **kwargs: Any) -> InputOutcome:
        outcome = super().ingest_stream(*args, **kwargs)
        if not self.grouping:
            self._count(1)
        return outcome

    def ingest_group(self, inputs: Sequence[tuple[bytes, str]]) -> list[InputOutcome]:
        self.grouping = True
        try:
            outcomes = super().ingest_group(inputs)
        finally:
            self.grouping = False
        self._count(len(inputs))
        return outcomes

    def _count(self, inputs: int) -> None:
        before, self.seen = self.seen, self.seen + inputs
        if before < self.after <= self.seen:
            self.crash()


def test_dovecot_killed_mid_batch_then_restarted(
        dovecot: DovecotServer, mailbox: Callable[..., MailboxConfig], engine: Engine, data_dir: Path,
        running: Callable[[Collector], Collector]) -> None:
    config = mailbox()
    messages = [report_email(f"k{number}", records=1) for number in range(40)]
    for message in messages:
        dovecot.append(config.user, "INBOX", message)

    def crash() -> None:
        dovecot.kill()  # SIGKILL, mid-batch: the 12th message is committed but not yet moved
        threading.Timer(1.0, dovecot.restart).start()

    pipeline = CrashingPipeline(engine, data_dir, UnpackLimits(), after=12, crash=crash)
    board = StatusBoard(engine)
    try:
        running(Collector([config], pipeline, board))
        wait_for(lambda: pipeline.seen >= 12, 20, "the crash")
        wait_for(lambda: board.get(config.label).state == "backoff", 10, "the error to be noticed")
        wait_for(lambda: dovecot.is_running() and reports_in(engine) == 40
                 and board.get(config.label).state == "idle", 30, "recovery and the rest of the backlog")
    finally:
        wait_for(dovecot.is_running, 10, "Dovecot to be back")
    assert dovecot.folder_uids(config.user, "INBOX") == []
    assert sorted(dovecot.folder_messages(config.user, "Archive")) == sorted(messages)  # each once
    assert dovecot.folder_uids(config.user, "Invalid") == []
    assert reports_in(engine) == 40 and count_rows(engine, "aggregate_record") == 40
    status = board.get(config.label)
    assert status.ingested == 40 and status.last_error is None  # cleared by the successful pass


def block_writes_after(engine: Engine, reports: int) -> None:
    """From the `reports`-th stored report on, the store refuses to keep anything."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for event in ("INSERT", "UPDATE"):
                conn.execute(text(
                    f"CREATE TRIGGER read_only_{event.lower()} BEFORE {event} ON original "
                    f"WHEN (SELECT count(*) FROM aggregate_report) >= {reports} "
                    "BEGIN SELECT RAISE(ABORT, 'attempt to write a readonly database'); END"))
        else:
            conn.execute(text(
                "CREATE FUNCTION read_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF (SELECT count(*) FROM aggregate_report) >= {reports} THEN "
                "RAISE EXCEPTION 'cannot execute INSERT in a read-only transaction' USING ERRCODE = '25006'; "
                "END IF; RETURN NEW; END $$"))
            conn.execute(text("CREATE TRIGGER read_only BEFORE INSERT OR UPDATE ON original "
                              "FOR EACH ROW EXECUTE FUNCTION read_only()"))


def unblock_writes(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER read_only_insert"))
            conn.execute(text("DROP TRIGGER read_only_update"))
        else:
            conn.execute(text("DROP TRIGGER read_only ON original"))


def test_database_unwritable_mid_batch(dovecot: DovecotServer, mailbox: Callable[..., MailboxConfig],
                                       pipeline: IngestPipeline, engine: Engine) -> None:
    config = mailbox()  # batches of 5
    messages = [report_email(f"w{number}", records=1) for number in range(12)]
    for message in messages:
        dovecot.append(config.user, "INBOX", message)
    block_writes_after(engine, 7)
    if engine.dialect.name == "sqlite":
        # each batch is one write group: the first commits; the second fails at its 2nd input
        # (the 7th report), so none of its messages is stored, and none is moved
        stored, moved = 5, 5
    else:
        # one transaction per input: the 7th report is committed, but the store fails before
        # its input is marked done, so that message is not moved either
        stored, moved = 7, 6
    board = StatusBoard(engine)
    failed = MailboxCollector(config, pipeline, board).run_pass()

    assert not failed.ok and failed.reason == "database_unavailable", failed
    assert "stays in INBOX" in (failed.error or "")
    assert reports_in(engine) == stored and count_rows(engine, "original") == stored
    assert sorted(dovecot.folder_messages(config.user, "Archive")) == sorted(messages[:moved])
    assert sorted(dovecot.folder_messages(config.user, "INBOX")) == sorted(messages[moved:])
    assert dovecot.folder_uids(config.user, "Invalid") == []
    status = board.get(config.label)
    assert status.state == "backoff" and status.last_error_reason == "database_unavailable"

    unblock_writes(engine)
    recovered = MailboxCollector(config, pipeline, board).run_pass()
    assert recovered.ok and recovered.archived == 12 - moved  # a stored one is found a duplicate
    assert sorted(dovecot.folder_messages(config.user, "Archive")) == sorted(messages)
    assert reports_in(engine) == 12 and count_rows(engine, "original") == 12


def test_report_stored_but_input_not_marked_is_moved_after_recovery(
        tmp_path: Path, pipeline: IngestPipeline, engine: Engine) -> None:
    """Outside a write group (an upload), a report can be committed before the store fails
    to mark its input done; the input is then not answered as stored, and its next ingest
    finds the report already there and stores nothing twice."""
    block_writes_after(engine, 1)
    body = report_email("marked", records=1)
    failure = ingest_one(pipeline, body, "upload")
    assert isinstance(failure, StoreFailure) and reports_in(engine) == 1
    unblock_writes(engine)
    again = ingest_one(pipeline, body, "upload")
    assert isinstance(again, InputOutcome) and [r.status for r in again.reports] == ["duplicate"]
    assert reports_in(engine) == 1 and count_rows(engine, "original") == 1


# -- errors a user must be told about ------------------------------------------------------

@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("change", "reason", "words"), [
    ({"password": "wrong"}, "login_failed", "refused the login"),
    ({"folder": "NoSuchFolder"}, "folder_missing", "'NoSuchFolder' to read does not exist"),
    ({"tls": "ssl", "port": None}, "tls_untrusted", "is not trusted"),
    ({"port": 1}, "connect_failed", "cannot connect"),
], ids=["wrong-password", "unknown-folder", "untrusted-certificate", "connection-refused"])
def test_clear_errors_and_no_crash(dovecot: DovecotServer, mailbox: Callable[..., MailboxConfig],
                                   pipeline: IngestPipeline, engine: Engine,
                                   running: Callable[[Collector], Collector],
                                   change: dict[str, Any], reason: str, words: str) -> None:
    if change.get("tls") == "ssl":
        change = {**change, "port": dovecot.tls_port, "host": "localhost"}
    config = mailbox(**change)
    result = MailboxCollector(config, pipeline, StatusBoard(engine)).run_pass()
    assert not result.ok and result.reason == reason and words in (result.error or ""), result.error
    assert "Traceback" not in (result.error or "")
    session = MailboxSession(config)
    with pytest.raises(MailboxError) as raised:
        session.open()
    assert raised.value.reason == reason and session.client is None  # nothing left connected
    # collected for ever: retried with growing delays, and stopped cleanly
    board = StatusBoard(engine)
    collector = running(Collector([config], pipeline, board))
    # the state flips to "connecting" at each retry: wait for a moment between two attempts
    wait_for(lambda: collector.mailboxes[0].failures >= 3 and board.get(config.label).state == "backoff",
             10, "three attempts")
    status = board.get(config.label)
    assert status.state in ("backoff", "connecting") and status.last_error_reason == reason
    assert status.next_attempt_at is not None
    collector.stop()
    assert not any(thread.is_alive() for thread in collector.threads)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("tls", ["ssl", "starttls"])
def test_tls_with_the_servers_ca(dovecot: DovecotServer, mailbox: Callable[..., MailboxConfig],
                                 pipeline: IngestPipeline, engine: Engine, tls: str) -> None:
    port = dovecot.tls_port if tls == "ssl" else dovecot.port
    config = mailbox(tls=tls, port=port, host="localhost", ca_file=dovecot.ca_file)
    dovecot.append(config.user, "INBOX", report_email(f"tls-{tls}"))
    result = MailboxCollector(config, pipeline, StatusBoard(engine)).run_pass()
    assert result.ok and result.archived == 1, result.error


def test_backoff_grows_with_jitter_up_to_the_cap(mailbox: Callable[..., MailboxConfig],
                                                 pipeline: IngestPipeline, engine: Engine) -> None:
    from ingest.imap_collector import PassResult

    random.seed(5)
    collector = MailboxCollector(mailbox(max_backoff=8), pipeline, StatusBoard(None))
    delays = [collector._failed(PassResult("m"), MailboxError("timeout", "slow")) for _ in range(7)]
    ceilings = [1, 2, 4, 8, 8, 8, 8]
    assert all(ceiling / 2 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered
