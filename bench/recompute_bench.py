"""Recomputation benchmark: a million stored records judged again against warm DNS snapshots.

What is measured, per database:

* Fill: the synthetic history of `api_bench.py` (default 1,000,000 records in 1,800 reports:
  3 policy domains, 10 reporters, 60 days; Zipf-weighted own senders plus one-off sources,
  IPv4 and IPv6), ingested through `IngestPipeline` as `rua ingest` does.
* Snapshots: each domain's DNS recorded twice, a month apart, with a change between (an SPF
  include added, the DMARC policy tightened), so records fall on both sides of a change:
  SPF records of the domain, its bounce domain and the include, `_dmarc`, the DKIM key of
  the selector the reports name. No live DNS is asked: "warm" means the history is stored.
* Recompute: `rua align --recompute`'s work (`ingest.recompute.recompute(everything=True)`):
  read every report and record with its auth results, judge each against the DNS of its
  report's dates, write the verdicts and the per-report class totals. Run once in one process
  and once with `--workers` processes sharing the reports, over the same database; records/s
  over the whole run, and the peak RSS of one process.

Usage: `.venv/bin/python bench/recompute_bench.py [--db sqlite,postgresql] [--records 1000000]
[--markdown]`.
"""

from __future__ import annotations

import argparse
import base64
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from api_bench import DOMAINS, START, History, fill, log, with_database  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app.db import create_db_engine  # noqa: E402
from app.models import RecordVerdict, table_of  # noqa: E402
from ingest.dns_snapshot_store import record_answers  # noqa: E402
from ingest.dns_source import DnsAnswer, DnsOutcome  # noqa: E402
from ingest.recompute import recompute  # noqa: E402


def key_record() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def snapshots(database_url: str, days: int) -> int:
    """Two snapshots of every domain, the second half-way through the history, changed."""
    engine = create_db_engine(database_url)
    key = key_record()
    written = 0
    with engine.begin() as conn:
        for when, later in ((START - timedelta(days=1), False), (START + timedelta(days=days // 2), True)):
            answers = []
            for n, domain in enumerate(DOMAINS, start=1):
                include = f" include:_spf.esp.{domain}" if later else ""
                answers += [
                    DnsAnswer(domain, "TXT", DnsOutcome.ANSWER, (f"v=spf1 ip4:10.{n}.0.0/16{include} ~all",)),
                    DnsAnswer(f"bounce.{domain}", "TXT", DnsOutcome.ANSWER,
                              (f"v=spf1 ip4:10.{n}.0.0/16 ip6:2001:db8::/32 -all",)),
                    DnsAnswer(f"_spf.esp.{domain}", "TXT", DnsOutcome.ANSWER,
                              ("v=spf1 ip4:100.0.0.0/8 ip4:150.0.0.0/8 -all",)),
                    DnsAnswer(f"_dmarc.{domain}", "TXT", DnsOutcome.ANSWER,
                              (f"v=DMARC1; p={'reject' if later else 'quarantine'}; rua=mailto:d@{domain}",)),
                    DnsAnswer(f"s1._domainkey.{domain}", "TXT", DnsOutcome.ANSWER, (key,)),
                ]
            record_answers(conn, answers, when)
            written += len(answers)
    engine.dispose()
    return written


def bench_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rua-recompute-bench-") as work:
        workdir = Path(work)

        def run(url: str) -> dict[str, Any]:
            history = History(args.records, days=args.days)
            log(f"{kind}: filling {history.reports} reports of {history.per_report} records")
            filled = fill(url, workdir / "data", history, workdir)
            log(f"{kind}: {filled['records']:,} records in {filled['seconds']:.0f} s; recording snapshots")
            snapshots(url, args.days)
            runs = {}
            for workers in args.workers:
                # in a fresh process, so the peak RSS is the recomputation's own, not the fill's
                done = subprocess.run([sys.executable, __file__, "--recompute-only", url, str(workers)],
                                      check=True, capture_output=True, text=True)
                runs[workers] = json.loads(done.stdout)
                log(f"{kind}: {workers} process(es): {runs[workers]['records']:,} records in "
                    f"{runs[workers]['seconds']:.1f} s")
            engine = create_db_engine(url)
            table = table_of(RecordVerdict)
            with engine.connect() as conn:
                classes = Counter(dict(conn.execute(select(table.c.record_class, func.count())
                                                    .group_by(table.c.record_class)).all()))
            engine.dispose()
            return {"runs": runs, "classes": dict(classes)}

        return with_database(kind, workdir, run)


def render(results: dict[str, dict[str, Any]], markdown: bool) -> str:
    lines = []
    if markdown:
        lines += ["| database | processes | records | seconds | records/s | peak RSS (one process) |",
                  "|---|---:|---:|---:|---:|---:|"]
    for kind, result in results.items():
        for workers, run in result["runs"].items():
            row = (kind, str(workers), f"{run['records']:,}", f"{run['seconds']:.1f}",
                   f"{run['records_per_second']:,.0f}", f"{run['peak_rss_mb']:.0f} MB")
            lines.append("| " + " | ".join(row) + " |" if markdown else
                         f"{row[0]:<11} {row[1]} process(es) {row[2]:>10} records in {row[3]:>6} s = "
                         f"{row[4]:>8} records/s, peak RSS {row[5]}")
    for kind, result in results.items():
        lines.append(f"{kind} classes: {result['classes']}")
    return "\n".join(lines)


def recompute_only(url: str, workers: int) -> None:
    engine = create_db_engine(url)
    started = time.perf_counter()
    stats = recompute(engine, everything=True, workers=workers)
    seconds = time.perf_counter() - started
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"records": stats.records, "seconds": seconds,
                      "records_per_second": stats.records / seconds, "peak_rss_mb": peak / 1024}))


def main() -> None:
    if sys.argv[1:2] == ["--recompute-only"]:
        recompute_only(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--workers", default="1,2", help="process counts to run, e.g. 1,2")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    args.workers = [int(value) for value in args.workers.split(",")]
    results = {kind: bench_database(kind, args) for kind in args.db.split(",")}
    print(render(results, args.markdown))


if __name__ == "__main__":
    main()
