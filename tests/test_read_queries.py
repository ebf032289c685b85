"""The read API's numbers against an independent reckoning, on SQLite and PostgreSQL.

A seeded random history of reports (multi-day ones, undated ones, a conflicting copy, IPv4
and IPv6 sources) is ingested, and for hundreds of random filter combinations the summary,
the per-source and per-domain groups, the record and report counts are compared with the
same figures computed here in plain Python from the generated data. Both ways the store can
answer — the daily totals and the records themselves — are checked against it.
"""

from __future__ import annotations

import ipaddress
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from app.grouped_query import grouped
from app.record_filter import SOURCE_TOTALS, TOTALS, RecordFilter, Window
from app.record_query import count_records, record_page
from app.report_query import count_reports
from app.summary_query import Summary, Tally, _from_records, _from_totals, summarise
from ingest.daily_totals import report_days
from ingest.pipeline import IngestPipeline
from tests import samples

DAY = 86400
EPOCH = datetime(2026, 10, 1, tzinfo=UTC)
IPS = ["192.0.2.1", "192.0.2.77", "198.51.100.5", "203.0.113.9", "2001:db8::1", "2001:db8::ff"]
ORGS = ["google.com", "Microsoft Corporation", "Yahoo"]
DOMAINS = ["example.com", "example.org"]
HEADER_FROM = ["example.com", "news.example.com", "example.org"]


@dataclass
class Stored:
    """A report as ingested, for the reference computation."""

    org: str
    domain: str
    begin: datetime | None
    end: datetime | None
    records: list[samples.Rec]
    conflict: bool = False


def build_history(pipeline: IngestPipeline, tmp_path: Path, rng: random.Random) -> list[Stored]:
    stored: list[Stored] = []
    for number in range(40):
        start = EPOCH + timedelta(days=rng.randrange(60))
        span = rng.choice([1, 1, 1, 1, 2, 3])
        # some reporters use [00:00, 23:59:59], others [00:00, next 00:00]; a few start mid-day
        offset = timedelta(hours=rng.choice([0, 0, 0, 7]))
        end = start + offset + timedelta(days=span) - timedelta(seconds=rng.choice([0, 1]))
        begin = start + offset
        if number == 7:
            begin = end = None  # undated: in no window
        records = [samples.Rec(source_ip=rng.choice(IPS), count=str(rng.randrange(0, 50)),
                               disposition=rng.choice(["none", "none", "quarantine", "reject"]),
                               dkim=rng.choice(["pass", "fail"]), spf=rng.choice(["pass", "fail"]),
                               header_from=rng.choice(HEADER_FROM))
                   for _ in range(rng.randrange(1, 6))]
        report = Stored(rng.choice(ORGS), rng.choice(DOMAINS), begin, end, records)
        ingest(pipeline, tmp_path, report, f"r{number}")
        stored.append(report)
    # a second copy of report 3 with other numbers: kept and flagged, never counted
    first = stored[3]
    conflict = Stored(first.org, first.domain, first.begin, first.end, [samples.Rec(count="999")],
                      conflict=True)
    ingest(pipeline, tmp_path, conflict, "r3")
    stored.append(conflict)
    return stored


def ingest(pipeline: IngestPipeline, tmp_path: Path, report: Stored, report_id: str) -> None:
    begin = str(int(report.begin.timestamp())) if report.begin else ""
    end = str(int(report.end.timestamp())) if report.end else ""
    xml = samples.aggregate_xml(report.records, org_name=report.org, report_id=report_id,
                                domain=report.domain, begin=begin, end=end)
    path = tmp_path / f"{report_id}-{len(report.records)}-{report.conflict}.xml"
    path.write_bytes(xml)
    assert pipeline.ingest_path(path).reports[0].status == "new"


# -- the reference ----------------------------------------------------------------------------

def matches_report(report: Stored, flt: RecordFilter) -> bool:
    if report.conflict:
        return False
    if flt.domains and report.domain not in flt.domains:
        return False
    if flt.org_keys and " ".join(report.org.split()).casefold() not in flt.org_keys:
        return False
    since, until = flt.window.since, flt.window.until
    if since is not None or until is not None:
        if report.begin is None or report.end is None:
            return False
        if since is not None and not report.end > since:
            return False
        if until is not None and not report.begin < until:
            return False
    return True


def matches_record(record: samples.Rec, flt: RecordFilter) -> bool:
    dmarc = "pass" if "pass" in (record.dkim, record.spf) else "fail"
    return ((not flt.header_from or record.header_from in flt.header_from)
            and (not flt.networks
                 or any(ipaddress.ip_address(record.source_ip) in net for net in flt.networks))
            and (not flt.dispositions or record.disposition in flt.dispositions)
            and (flt.dmarc is None or dmarc == flt.dmarc))


def reference(history: list[Stored], flt: RecordFilter) -> dict[str, Any]:
    total = Tally()
    days: dict[date, Tally] = defaultdict(Tally)
    sources: dict[str, Tally] = defaultdict(Tally)
    domains: dict[str, Tally] = defaultdict(Tally)
    reports = records = 0
    for report in history:
        if not matches_report(report, flt):
            continue
        chosen = [record for record in report.records if matches_record(record, flt)]
        if flt.has_record_filters and not chosen:
            continue
        reports += 1
        first_day = report_days(report.begin, report.end)[0]
        for record in chosen:
            records += 1
            dmarc = "pass" if "pass" in (record.dkim, record.spf) else "fail"
            count = int(record.count)
            values = (record.disposition, dmarc, count, 1, count * (record.spf == "pass"),
                      count * (record.dkim == "pass"))
            total.add(*values)
            sources[str(ipaddress.ip_address(record.source_ip))].add(*values)
            domains[report.domain].add(*values)
            if report.begin is not None:
                since_day = flt.window.since_day
                days[max(first_day, since_day) if since_day else first_day].add(*values)
    return {"total": total, "days": dict(days), "sources": dict(sources), "domains": dict(domains),
            "reports": reports, "records": records}


# -- random filters ---------------------------------------------------------------------------

def random_filter(rng: random.Random, whole_days: bool) -> RecordFilter:
    window = Window()
    if rng.random() < 0.7:
        since = EPOCH + timedelta(days=rng.randrange(-5, 65))
        if not whole_days:
            since += timedelta(hours=rng.randrange(1, 24))
        until = since + timedelta(days=rng.randrange(1, 40))
        window = Window(since if rng.random() < 0.85 else None, until if rng.random() < 0.85 else None)
    pick = lambda values, chance: tuple(rng.sample(values, rng.randrange(1, len(values) + 1))) \
        if rng.random() < chance else ()  # noqa: E731
    networks = tuple(ipaddress.ip_network(n) for n in pick(
        ["192.0.2.0/24", "198.51.100.5/32", "2001:db8::/64", "2001:db8::ff/128", "10.0.0.0/8"], 0.25))
    return RecordFilter(
        domains=pick(DOMAINS, 0.3), window=window,
        org_keys=tuple(" ".join(org.split()).casefold() for org in pick(ORGS, 0.25)),
        header_from=pick(HEADER_FROM, 0.2), networks=networks,
        dispositions=pick(["none", "quarantine", "reject"], 0.25),
        dmarc=rng.choice(["pass", "fail"]) if rng.random() < 0.25 else None)


def fold(rows: Any, flt: RecordFilter) -> tuple[Tally, dict[date, Tally]]:
    """What summarise does with its rows, for rows from a chosen table."""
    from app.models import UNDATED

    total, days = Tally(), defaultdict(Tally)
    for first_day, *values in rows:
        total.add(*values)
        if first_day != UNDATED:
            since_day = flt.window.since_day
            days[max(first_day, since_day) if since_day else first_day].add(*values)
    return total, dict(days)


def test_every_path_agrees_with_the_reference(engine: Engine, pipeline: IngestPipeline,
                                              tmp_path: Path) -> None:
    rng = random.Random(20261128)
    history = build_history(pipeline, tmp_path, rng)
    checked = {"daily_totals": 0, "daily_source_totals": 0, "records": 0}
    with engine.connect() as conn:
        for case in range(300):
            flt = random_filter(rng, whole_days=case % 4 != 0)
            expected = reference(history, flt)
            summary: Summary = summarise(conn, flt)
            assert summary.total == expected["total"], flt
            assert summary.days == expected["days"], flt
            assert summary.reports == expected["reports"], flt
            assert count_records(conn, flt) == expected["records"], flt
            # the records always answer, whatever the filters: they are the ground truth
            assert fold(_from_records(conn, flt), flt) == (expected["total"], expected["days"]), flt
            if flt.totals_answer:
                assert fold(_from_totals(conn, TOTALS, flt), flt) == (
                    expected["total"], expected["days"]), flt
                checked["daily_totals"] += 1
            if flt.source_totals_answer:
                assert fold(_from_totals(conn, SOURCE_TOTALS, flt), flt) == (
                    expected["total"], expected["days"]), flt
                checked["daily_source_totals"] += 1
            if not flt.totals_answer and not flt.source_totals_answer:
                checked["records"] += 1
            for by, key in (("source_ip", "sources"), ("policy_domain", "domains")):
                page = grouped(conn, flt, by, None, 0)  # type: ignore[arg-type]
                assert {group.key: group.tally for group in page.groups} == expected[key], (by, flt)
                assert page.total == len(expected[key])
                volumes = [group.tally.messages for group in page.groups]
                assert volumes == sorted(volumes, reverse=True)
                if page.total > 1:  # paging: the second group alone, and the count still whole
                    second = grouped(conn, flt, by, 1, 1)  # type: ignore[arg-type]
                    assert second.total == page.total and second.groups[0].key == page.groups[1].key
    assert min(checked.values()) >= 20, checked  # each path was really exercised


def test_record_pages_walk_every_record_once(engine: Engine, pipeline: IngestPipeline,
                                             tmp_path: Path) -> None:
    rng = random.Random(7)
    history = build_history(pipeline, tmp_path, rng)
    with engine.connect() as conn:
        total = count_records(conn, RecordFilter())
        assert total == sum(len(r.records) for r in history if not r.conflict)
        seen = []
        for offset in range(0, total + 7, 7):
            page = record_page(conn, RecordFilter(), 7, offset)
            seen.extend((row.report_id, row.record_no) for row in page)
        assert len(seen) == len(set(seen)) == total
        assert seen == sorted(seen, key=lambda key: (-key[0], key[1]))
        # reports list conflicting copies too (that is where they are reviewed)
        assert count_reports(conn, RecordFilter()) == len(history)


@pytest.mark.parametrize("bound", ["2026-10-05", "2026-10-05T00:00:00Z", "2026-10-05T00:00:00+02:00"])
def test_window_bounds(bound: str) -> None:
    from app.record_filter import parse_moment

    since = parse_moment(bound, "since")
    until = parse_moment(bound, "until", end_of_day=True)
    if bound == "2026-10-05":
        assert (since, until) == (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC))
        assert Window(since, until).whole_days
    elif bound.endswith("Z"):
        assert since == until == datetime(2026, 10, 5, tzinfo=UTC)
    else:
        assert since == datetime(2026, 10, 4, 22, tzinfo=UTC)
        assert not Window(since, None).whole_days
