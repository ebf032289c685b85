"""Dashboard benchmark: the server's time to render each page over a million records.

What is measured, per database:

* Fill: the synthetic history of `api_bench.py` (default 1,000,000 records in 1,800 reports:
  3 policy domains, 10 reporters, 60 days), ingested through `IngestPipeline`; the DNS
  history of `recompute_bench.py` (two snapshots a month apart, with a change); sources
  identified (AS database and sender catalogue; reverse DNS answers "no PTR" at once, since
  the lookups are not what is measured here) and every record judged, as `rua serve` would
  have done by then.
* Pages: a real `rua serve` (uvicorn, one process), a signed-in session, each page asked
  `--requests` times after 2 warm-up calls with a one-month window (the last 30 days of the
  history): p50, p95 and max in ms, from request sent to last byte received over loopback.
  Target: under 500 ms for every page.

Usage: `.venv/bin/python bench/dashboard_bench.py [--db sqlite,postgresql] [--records 1000000]
[--requests 20] [--markdown]`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import httpx  # noqa: E402
from api_bench import DOMAINS, START, History, Server, fill, latency, log, with_database  # noqa: E402
from recompute_bench import snapshots  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.dashboard_users import create_user  # noqa: E402
from app.db import create_db_engine  # noqa: E402
from app.models import Record, Report, SourceAddress, table_of  # noqa: E402
from ingest.dns_source import DnsAnswer, DnsOutcome, RecordType  # noqa: E402
from ingest.recompute import recompute  # noqa: E402
from ingest.sender_catalogue import SenderCatalogue  # noqa: E402
from ingest.source_enrichment import identify_sources  # noqa: E402

PASSWORD = "benchmark password"


class NoReverseDns:
    """Every address without a PTR name, answered at once: identification by network and
    catalogue only, so the fill does not wait on reverse lookups it does not measure."""

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        return DnsAnswer(name, rdtype, DnsOutcome.NXDOMAIN, ())


def prepare(url: str, workdir: Path, args: argparse.Namespace) -> None:
    history = History(args.records, days=args.days)
    log(f"filling {history.reports} reports of {history.per_report} records")
    filled = fill(url, workdir / "data", history, workdir)
    log(f"{filled['records']:,} records in {filled['seconds']:.0f} s; snapshots, identification, judging")
    snapshots(url, args.days)
    engine = create_db_engine(url)
    identified = identify_sources(engine, NoReverseDns(), SenderCatalogue.load(None))
    judged = recompute(engine, everything=True, workers=2)
    log(f"identified {identified.sources:,} sources, judged {judged.records:,} records")
    create_user(engine, "bench", PASSWORD)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum does soon after a bulk load
    engine.dispose()


def page_paths(url: str, since: str, until: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each page once, with the ids and keys of its busiest items (the slowest to show)."""
    engine = create_db_engine(url)
    reports, records, addresses = table_of(Report), table_of(Record), table_of(SourceAddress)
    with engine.connect() as conn:
        report_id = conn.execute(select(reports.c.id).order_by(reports.c.date_begin.desc()).limit(1)).scalar()
        busiest = conn.execute(select(addresses.c.ip, addresses.c.sender)
                               .order_by(addresses.c.messages.desc()).limit(1)).first()
        assert conn.execute(select(records.c.report_id).limit(1)).first() is not None
    engine.dispose()
    assert report_id is not None and busiest is not None
    window = {"since": since, "until": until}
    domain = {**window, "domain": DOMAINS[0]}
    return {
        "overview": ("/", window),
        "overview, one domain": ("/", domain),
        "sources by service": ("/sources", {**window, "group": "service"}),
        "sources by ip": ("/sources", {**window, "group": "ip"}),
        "source: busiest service": (f"/sources/service/{busiest.sender}", window),
        "source: busiest ip": (f"/sources/ip/{busiest.ip}", window),
        "forwarding": ("/forwarding", window),
        "reports": ("/reports", window),
        "report": (f"/reports/{report_id}", {}),
        "report XML": (f"/reports/{report_id}/xml", {}),
        "dns": ("/dns", {}),
        "dns: one domain": (f"/dns/{DOMAINS[0]}", {}),
        "failure reports": ("/failures", window),
        "tls reports": ("/tls", window),
    }


def signed_in(server: Server) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=60, headers={"Accept": "text/html"})
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text[:500]
    answer = client.post("/login", data={"username": "bench", "password": PASSWORD, "next": "/",
                                         "csrf_token": token.group(1)})
    assert answer.status_code == 303, answer.text[:500]
    return client


def bench_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rua-dashboard-bench-") as work:
        workdir = Path(work)

        def run(url: str) -> dict[str, Any]:
            prepare(url, workdir, args)
            last = START + timedelta(days=args.days - 1)
            since, until = (last - timedelta(days=29)).date().isoformat(), last.date().isoformat()
            # the history is judged already: no background DNS work beside the pages
            server = Server(url, workdir / "data", workdir, {"RUA_DNS_IN_SERVE": "false"})
            results: dict[str, Any] = {}
            try:
                client = signed_in(server)
                for name, (path, params) in page_paths(url, since, until).items():
                    started = time.perf_counter()
                    first = client.get(path, params=params)
                    first_ms = (time.perf_counter() - started) * 1000
                    if first.status_code != 200:
                        results[name] = {"error": f"HTTP {first.status_code}"}
                        log(f"{kind}: {name}: HTTP {first.status_code}")
                        continue
                    results[name] = {"first": first_ms, **latency(client, path, params, args.requests)}
                    figures = results[name]
                    log(f"{kind}: {name}: p50 {figures['p50']:.0f} ms, max {figures['max']:.0f} ms")
                client.close()
            finally:
                server.stop()
            return results

        return with_database(kind, workdir, run)


def render(results: dict[str, dict[str, Any]], markdown: bool) -> str:
    lines = []
    if markdown:
        lines += ["| database | page | first (ms) | p50 (ms) | p95 (ms) | max (ms) |",
                  "|---|---|---:|---:|---:|---:|"]
    for kind, pages in results.items():
        for name, figures in pages.items():
            if "error" in figures:
                row = (kind, name, figures["error"], "", "", "")
            else:
                row = (kind, name, *(f"{figures[key]:.0f}" for key in ("first", "p50", "p95", "max")))
            lines.append("| " + " | ".join(row) + " |" if markdown else
                         f"{row[0]:<11} {row[1]:<26} first {row[2]:>6}  p50 {row[3]:>5}  p95 {row[4]:>5}  "
                         f"max {row[5]:>5}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    results = {kind: bench_database(kind, args) for kind in args.db.split(",")}
    print(render(results, args.markdown))


if __name__ == "__main__":
    main()
