"""Prometheus metrics: what was ingested, what failed and why, how fast requests are answered.

Each app holds its own `CollectorRegistry`, so several apps in one process (tests, workers)
never collide on metric names. Code that ingests calls the module-level `observe_ingest`,
which counts into the registry of the app handling the current request: the request
middleware binds it to a context variable, so ingest code needs no handle on the app. Stored
totals are not counters but gauges read from the database at scrape time, so they stay true
across restarts and across ingest done by other processes (`rua ingest`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from app.models import Original, Report
from ingest.collector_status import StatusBoard, current_statuses
from ingest.pipeline import InputOutcome

log = logging.getLogger(__name__)

# request latencies from a quick token check up to a large upload being unpacked
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QUARANTINED_STATUSES = ("failed", "partial")

# a `_created` timestamp series beside every counter doubles what Prometheus stores, for
# nothing a rate() needs (a process-wide switch of the client library)
disable_created_metrics()  # type: ignore[no-untyped-call]


class StoreCollector(Collector):
    """Totals of the store, read with a few aggregate queries on every scrape, and the IMAP
    collector's state per mailbox (whichever process collects)."""

    def __init__(self, engine: Engine, board: StatusBoard | None = None) -> None:
        self.engine = engine
        self.board = board

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("rua_database_up", "1 when the store answered this scrape's queries")
        try:
            with self.engine.connect() as conn:
                reports = conn.execute(select(func.count()).select_from(Report)).scalar_one()
                records = conn.execute(select(func.coalesce(func.sum(Report.record_count), 0))).scalar_one()
                quarantined = conn.execute(
                    select(func.count()).select_from(Original)
                    .where(Original.status.in_(QUARANTINED_STATUSES))  # type: ignore[attr-defined]
                ).scalar_one()
        except SQLAlchemyError as exc:
            log.warning("metrics: cannot read store totals: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("rua_stored_reports", "Aggregate reports in the store", value=reports)
        yield GaugeMetricFamily("rua_stored_records", "Aggregate report records in the store",
                                value=int(records))
        yield GaugeMetricFamily("rua_quarantined_inputs",
                                "Inputs kept with status failed or partial, awaiting a retry or a look",
                                value=quarantined)
        yield from self._mailboxes()

    def _mailboxes(self) -> Iterator[Metric]:
        try:
            statuses = current_statuses(self.engine, self.board)
        except SQLAlchemyError:
            return
        labels = ["mailbox"]
        backlog = GaugeMetricFamily("rua_collector_backlog", "Messages waiting in the mailbox at the "
                                    "collector's last look", labels=labels)
        success = GaugeMetricFamily("rua_collector_last_success_timestamp_seconds",
                                    "When the mailbox was last drained completely", labels=labels)
        failing = GaugeMetricFamily("rua_collector_failing", "1 from an error until the next complete "
                                    "pass, with the error's reason code", labels=[*labels, "reason"])
        messages = CounterMetricFamily("rua_collector_messages", "Messages handled, by outcome (archived, "
                                       "invalid, deferred)", labels=[*labels, "outcome"])
        for status in statuses:
            if status.backlog is not None:
                backlog.add_metric([status.name], status.backlog)
            if status.last_success_at is not None:
                success.add_metric([status.name], status.last_success_at.timestamp())
            failing.add_metric([status.name, status.last_error_reason or ""],
                               int(status.last_error is not None))
            for outcome, value in (("archived", status.ingested), ("invalid", status.invalid),
                                   ("deferred", status.deferred)):
                messages.add_metric([status.name, outcome], value)
        yield from (backlog, success, failing, messages)


class Metrics:
    """One app's metrics and the registry they are exposed from."""

    def __init__(self, engine: Engine | None = None, board: StatusBoard | None = None) -> None:
        self.registry = CollectorRegistry()
        self.inputs = Counter("rua_inputs", "Inputs ingested, by outcome (ok, partial, failed, deferred)",
                              ["status"], registry=self.registry)
        self.reports = Counter("rua_reports_ingested", "Reports found in inputs, by kind and outcome "
                               "(new, duplicate, failed, deferred)", ["kind", "status"],
                               registry=self.registry)
        self.records = Counter("rua_records_ingested", "Records of newly stored reports",
                               registry=self.registry)
        self.failures = Counter("rua_ingest_failures", "Inputs and reports that failed, by reason code",
                                ["reason"], registry=self.registry)
        self.http_requests = Counter("rua_http_requests", "HTTP requests answered, by route template",
                                     ["method", "route", "status"], registry=self.registry)
        self.http_duration = Histogram("rua_http_request_duration_seconds",
                                       "Time to answer an HTTP request in full, by route template",
                                       ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        if engine is not None:
            self.registry.register(StoreCollector(engine, board))

    def observe_ingest(self, outcome: InputOutcome) -> None:
        self.inputs.labels(outcome.status).inc()
        if outcome.error:
            self.failures.labels(outcome.reason or "unknown").inc()
        for report in outcome.reports:
            self.reports.labels(report.kind, report.status).inc()
            if report.status == "failed":
                self.failures.labels(report.reason or "unknown").inc()
        if outcome.records_new:
            self.records.inc(outcome.records_new)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    @contextmanager
    def bound(self) -> Iterator[None]:
        """Make `observe_ingest` count into these metrics within this context."""
        token = _current.set(self)
        try:
            yield
        finally:
            _current.reset(token)


_current: ContextVar[Metrics | None] = ContextVar("rua_metrics", default=None)


def observe_ingest(outcome: InputOutcome) -> None:
    """Count what an input brought in, into the metrics of the app serving this request.

    Outside a request (the `rua ingest` command) there is no endpoint to expose counters
    from, so nothing is counted; the store gauges still show that process's work.
    """
    metrics = _current.get()
    if metrics is not None:
        metrics.observe_ingest(outcome)
