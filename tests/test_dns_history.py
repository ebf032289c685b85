"""The interval history: unchanged answers extend, changes open, failures are kept apart, and
a past instant is answered with the interval that held then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.models import DnsSnapshot, table_of
from ingest.dns_history import DnsHistory, SnapshotInterval
from ingest.dns_snapshot_store import domain_intervals, last_checked, load_history, record_answers
from ingest.dns_source import DnsAnswer, DnsOutcome

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
SPF_A = DnsAnswer("example.com", "TXT", DnsOutcome.ANSWER, ("v=spf1 ip4:192.0.2.0/24 -all",), 300)
SPF_B = DnsAnswer("example.com", "TXT", DnsOutcome.ANSWER, ("v=spf1 include:_spf.esp.test -all",), 300)
TIMEOUT = DnsAnswer("example.com", "TXT", DnsOutcome.TIMEOUT)


def _rows(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table_of(DnsSnapshot))).scalar_one()


def test_unchanged_answers_extend_one_interval(engine):
    with engine.begin() as conn:
        assert record_answers(conn, [SPF_A], T0) == {("example.com", "TXT")}
        for hours in range(1, 50):
            assert record_answers(conn, [SPF_A], T0 + hours * HOUR) == set()
    assert _rows(engine) == 1
    with engine.connect() as conn:
        [interval] = domain_intervals(conn, "example.com")
    assert (interval.first_seen, interval.last_seen, interval.checks) == (T0, T0 + 49 * HOUR, 50)


def test_record_order_is_not_a_change(engine):
    first = DnsAnswer("example.com", "MX", DnsOutcome.ANSWER, ("10 a.example.com", "20 b.example.com"))
    again = DnsAnswer("example.com", "MX", DnsOutcome.ANSWER, ("20 b.example.com", "10 a.example.com"))
    with engine.begin() as conn:
        record_answers(conn, [first], T0)
        assert record_answers(conn, [again], T0 + HOUR) == set()


def test_a_change_opens_an_interval_and_a_timeout_is_its_own(engine):
    with engine.begin() as conn:
        record_answers(conn, [SPF_A], T0)
        record_answers(conn, [TIMEOUT], T0 + HOUR)
        record_answers(conn, [SPF_A], T0 + 2 * HOUR)
        record_answers(conn, [SPF_B], T0 + 3 * HOUR)
        history = load_history(conn)
    outcomes = [(i.outcome, i.records) for i in history.runs[("example.com", "TXT")]]
    assert outcomes == [(DnsOutcome.ANSWER, SPF_A.records), (DnsOutcome.TIMEOUT, ()),
                        (DnsOutcome.ANSWER, SPF_A.records), (DnsOutcome.ANSWER, SPF_B.records)]
    at = history.source_at(T0 + 90 * timedelta(minutes=1))
    assert at.lookup("example.com", "TXT").outcome is DnsOutcome.TIMEOUT  # never "no record"
    assert history.source_at(T0 + 3 * HOUR + HOUR).lookup("Example.COM.", "TXT").records == SPF_B.records


def test_last_checked(engine):
    with engine.begin() as conn:
        record_answers(conn, [SPF_A], T0)
        record_answers(conn, [SPF_A], T0 + HOUR)
        assert last_checked(conn, ["example.com", "other.test"]) == {"example.com": T0 + HOUR}


def _interval(start: datetime, records: tuple[str, ...], name: str = "example.com") -> SnapshotInterval:
    return SnapshotInterval(name, "TXT", DnsOutcome.ANSWER, records, 60, start, start)


def test_an_instant_before_the_first_check_borrows_it_and_says_so():
    history = DnsHistory.of([_interval(T0, SPF_A.records)])
    source = history.source_at(T0 - 30 * 24 * HOUR)
    assert source.lookup("example.com", "TXT").records == SPF_A.records
    assert source.borrowed == {("example.com", "TXT")}
    assert not history.source_at(T0).borrowed


def test_a_name_never_looked_up_is_missing_not_absent():
    source = DnsHistory().source_at(T0)
    answer = source.lookup("nowhere.test", "TXT")
    assert answer.failed
    assert source.missing == {("nowhere.test", "TXT")}


def test_epochs_split_time_where_anything_changed():
    history = DnsHistory.of([_interval(T0, SPF_A.records), _interval(T0 + 5 * HOUR, SPF_B.records),
                             _interval(T0 + 2 * HOUR, ("v=spf1 -all",), name="other.test")])
    epochs = [history.epoch(T0 + hours * HOUR) for hours in (-1, 0, 1, 2, 4, 5, 9)]
    assert epochs == [0, 1, 1, 2, 2, 3, 3]
