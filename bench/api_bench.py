"""API benchmark: query latency over a million records, and upload throughput, on SQLite and PostgreSQL.

What is measured, per database:

* Fill: a synthetic two-month history (default 1,000,000 records in 1,800 reports: 3 policy
  domains, 10 reporters, 60 days) is generated and ingested through `IngestPipeline` exactly
  as `rua ingest` does; the records/s of that fill are shown. Each domain's mail mostly comes
  from its own few hundred sending addresses (Zipf-weighted, as real senders are), the rest
  from a large pool of one-off sources (forwarders, spoofers), so the number of distinct
  (day, source) pairs — which is what the daily totals hold — is realistic rather than tiny.
* Queries: a real `rua serve` (uvicorn, one process) on that database, asked over HTTP with a
  read token, sequentially, `--requests` times each after 3 warm-up calls: `/summary`,
  `/sources` and `/records` (first page) over the last 30 days of the history, plus
  `/summary` with a source CIDR filter (answered from the source totals) and with a
  header_from filter (answered from the records themselves). p50, p95 and max in ms.
* Uploads: `--uploads` small reports (20 records each, a quarter of them re-sent duplicates)
  posted by `--clients` concurrent clients to `POST /api/v1/reports` on the same server (the
  database already holding the million records): reports/s and p50/p95 latency; the answers
  are checked (no error, the right number of new and duplicate reports).

PostgreSQL is a throw-away server started with `tests/services/pg-start.sh` with its durable
defaults (PG_DURABLE=1: fsync on); SQLite runs with Rua's own settings (WAL, synchronous=FULL).

Usage: `.venv/bin/python bench/api_bench.py [--db sqlite,postgresql] [--records 1000000]
[--requests 50] [--uploads 1000] [--clients 20] [--markdown]`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from app.api_tokens import Scope, create_token  # noqa: E402
from app.db import create_db_engine, upgrade_database  # noqa: E402
from ingest.limits import UnpackLimits  # noqa: E402
from ingest.pipeline import IngestPipeline  # noqa: E402

RUA = Path(sys.executable).parent / "rua"
DOMAINS = ("example.com", "example.org", "example.net")
ORGS = ("google.com", "Outlook.com", "Yahoo", "Mail.Ru", "Fastmail", "comcast.net", "GMX",
        "Zoho", "Apple iCloud", "Proton")
START = datetime(2026, 9, 1, tzinfo=UTC)


def log(message: str) -> None:
    print(f"[api-bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the synthetic history ------------------------------------------------------------------

class History:
    def __init__(self, records: int, days: int, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.days = days
        self.reports = len(DOMAINS) * len(ORGS) * days
        self.per_report = max(1, records // self.reports)
        # each domain's own senders, Zipf-weighted; and a big pool of one-off sources
        self.senders = {domain: [f"10.{i}.{j}.{k}" for i, j, k in (
            (d, n // 250, n % 250) for n in range(400) for d in [DOMAINS.index(domain) + 1])]
            for domain in DOMAINS}
        self.weights = [1 / (rank + 1) for rank in range(400)]

    def noise_ip(self) -> str:
        if self.rng.random() < 0.2:
            return f"2001:db8:{self.rng.randrange(65536):x}::{self.rng.randrange(1, 65536):x}"
        return f"{self.rng.randrange(11, 223)}.{self.rng.randrange(256)}.{self.rng.randrange(256)}." \
               f"{self.rng.randrange(1, 255)}"

    def report(self, day: int, org: str, domain: str, records: int, tag: str = "") -> bytes:
        rng = self.rng
        begin = START + timedelta(days=day)
        rows = []
        for _ in range(records):
            own = rng.random() < 0.8
            ip = rng.choices(self.senders[domain], self.weights)[0] if own else self.noise_ip()
            dkim = "pass" if own and rng.random() < 0.95 else "fail"
            spf = "pass" if own and rng.random() < 0.9 else "fail"
            disposition = "none" if "pass" in (dkim, spf) else rng.choice(("none", "quarantine", "reject"))
            header_from = domain if rng.random() < 0.9 else f"news.{domain}"
            rows.append(
                f"<record><row><source_ip>{ip}</source_ip><count>{rng.randrange(1, 200)}</count>"
                f"<policy_evaluated><disposition>{disposition}</disposition><dkim>{dkim}</dkim>"
                f"<spf>{spf}</spf></policy_evaluated></row><identifiers><header_from>{header_from}"
                f"</header_from><envelope_from>bounce.{domain}</envelope_from></identifiers><auth_results>"
                f"<dkim><domain>{domain}</domain><selector>s1</selector><result>{dkim}</result></dkim>"
                f"<spf><domain>bounce.{domain}</domain><scope>mfrom</scope><result>{spf}</result></spf>"
                f"</auth_results></record>")
        return (f'<?xml version="1.0" encoding="UTF-8"?><feedback><version>1.0</version><report_metadata>'
                f"<org_name>{org}</org_name><email>dmarc@{org.replace(' ', '')}</email>"
                f"<report_id>{org}-{domain}-{day}{tag}</report_id><date_range>"
                f"<begin>{int(begin.timestamp())}</begin><end>{int(begin.timestamp()) + 86399}</end>"
                f"</date_range></report_metadata><policy_published><domain>{domain}</domain><adkim>r</adkim>"
                f"<aspf>r</aspf><p>quarantine</p><pct>100</pct></policy_published>"
                + "".join(rows) + "</feedback>").encode()


def fill(database_url: str, data_dir: Path, history: History, workdir: Path) -> dict[str, float]:
    engine = create_db_engine(database_url)
    pipeline = IngestPipeline(engine, data_dir, UnpackLimits())
    path = workdir / "report.xml"
    records = 0
    started = time.perf_counter()
    for day in range(history.days):
        for domain in DOMAINS:
            for org in ORGS:
                path.write_bytes(history.report(day, org, domain, history.per_report))
                outcome = pipeline.ingest_path(path)
                assert [r.status for r in outcome.reports] == ["new"], outcome
                records += outcome.records_new
        if day % 10 == 9:
            log(f"  filled {day + 1}/{history.days} days, {records:,} records")
    elapsed = time.perf_counter() - started
    engine.dispose()
    return {"records": records, "seconds": elapsed, "records_per_second": records / elapsed}


# -- the server -----------------------------------------------------------------------------

class Server:
    def __init__(self, database_url: str, data_dir: Path, workdir: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUA_")}
        env.update(RUA_DATABASE_URL=database_url, RUA_DATA_DIR=str(data_dir), RUA_LOG_LEVEL="WARNING")
        env.update(extra_env or {})
        self.log = open(workdir / "serve.log", "wb")
        self.process = subprocess.Popen([str(RUA), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + "/healthz", timeout=2)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("rua serve did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def latency(client: httpx.Client, path: str, params: dict[str, Any], requests: int) -> dict[str, float]:
    for _ in range(3):
        assert client.get(path, params=params).status_code == 200
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    times.sort()
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    return {"p50": statistics.median(times), "p95": p95, "max": times[-1]}


def uploads(server: Server, token: str, history: History, count: int, clients: int) -> dict[str, float]:
    bodies = []
    for n in range(count * 3 // 4):
        bodies.append(history.report(n % history.days, f"upload-{n}", DOMAINS[n % 3], 20, tag=f"-u{n}"))
    bodies += [bodies[n % len(bodies)] for n in range(count - len(bodies))]  # a quarter re-sent
    random.Random(2).shuffle(bodies)
    lock = threading.Lock()
    statuses: dict[str, int] = {}
    times: list[float] = []
    local = threading.local()

    def post(body: bytes) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.url, timeout=120,
                                        headers={"Authorization": f"Bearer {token}"})
        started = time.perf_counter()
        response = local.client.post("/api/v1/reports", content=body,
                                     headers={"Content-Type": "application/xml"})
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code in (200, 201), response.text
        with lock:
            times.append(elapsed)
            for report in response.json()["reports"]:
                statuses[report["status"]] = statuses.get(report["status"], 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, bodies))
    elapsed = time.perf_counter() - started
    assert statuses == {"new": count * 3 // 4, "duplicate": count - count * 3 // 4}, statuses
    times.sort()
    return {"reports_per_second": count / elapsed, "p50": statistics.median(times),
            "p95": times[int(len(times) * 0.95) - 1], "seconds": elapsed}


# -- databases ------------------------------------------------------------------------------

def with_database(kind: str, workdir: Path, run: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'rua.db'}"
        upgrade_database(url)
        return run(url)
    pg_dir = Path(tempfile.mkdtemp(prefix="rua-bench-pg-", dir="/tmp"))
    os.chmod(pg_dir, 0o755)
    port = free_port()
    subprocess.run(["bash", str(REPO / "tests/services/pg-start.sh"), str(pg_dir), str(port), "rua_bench"],
                   check=True, capture_output=True, env={**os.environ, "PG_DURABLE": "1"})
    try:
        url = f"postgresql+psycopg://dmarc:secret@127.0.0.1:{port}/rua_bench"
        upgrade_database(url)
        return run(url)
    finally:
        subprocess.run(["bash", str(REPO / "tests/services/pg-stop.sh"), str(pg_dir)], capture_output=True)
        shutil.rmtree(pg_dir, ignore_errors=True)


def bench_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"rua-bench-{kind}-"))
    history = History(args.records, args.days)

    def run(url: str) -> dict[str, Any]:
        log(f"{kind}: filling {history.reports:,} reports x {history.per_report} records")
        filled = fill(url, workdir / "data", history, workdir)
        if kind == "postgresql":
            engine = create_db_engine(url)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum does soon after a bulk load
            engine.dispose()
        engine = create_db_engine(url)
        token = create_token(engine, "bench", Scope.ADMIN).token
        engine.dispose()
        server = Server(url, workdir / "data", workdir)
        try:
            last = START + timedelta(days=history.days - 1)
            window = {"since": (last - timedelta(days=29)).date().isoformat(),
                      "until": last.date().isoformat()}
            queries = {
                "/summary (30 days)": ("/api/v1/summary", window),
                "/sources (30 days)": ("/api/v1/sources", window),
                "/records (30 days, first page)": ("/api/v1/records", window),
                "/summary (30 days, source /16)": ("/api/v1/summary", {**window, "source_ip": "10.1.0.0/16"}),
                "/summary (30 days, header_from)": ("/api/v1/summary",
                                                    {**window, "header_from": "news.example.com"}),
                "/domains (30 days)": ("/api/v1/domains", window),
            }
            results: dict[str, Any] = {"fill": filled, "queries": {}}
            with httpx.Client(base_url=server.url, timeout=120,
                              headers={"Authorization": f"Bearer {token}"}) as client:
                for name, (path, params) in queries.items():
                    log(f"{kind}: {name}")
                    results["queries"][name] = latency(client, path, params, args.requests)
            log(f"{kind}: {args.uploads} uploads from {args.clients} clients")
            results["uploads"] = uploads(server, token, history, args.uploads, args.clients)
            return results
        finally:
            server.stop()

    try:
        return with_database(kind, workdir, run)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def render(results: dict[str, dict[str, Any]], markdown: bool) -> str:
    kinds = list(results)
    lines = []
    header = ["", *(f"{kind} p50 / p95 ms" for kind in kinds)]
    rows = [[name, *(f"{results[k]['queries'][name]['p50']:.0f} / {results[k]['queries'][name]['p95']:.0f}"
                     for k in kinds)] for name in results[kinds[0]]["queries"]]
    rows.append(["uploads: reports/s (p50 / p95 ms)", *(
        f"{results[k]['uploads']['reports_per_second']:.0f} "
        f"({results[k]['uploads']['p50']:.0f} / {results[k]['uploads']['p95']:.0f})" for k in kinds)])
    rows.append(["fill: records/s", *(f"{results[k]['fill']['records_per_second']:,.0f}" for k in kinds)])
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|---|" + "---:|" * len(kinds))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        width = max(len(row[0]) for row in rows) + 2
        lines.append(header[0].ljust(width) + "".join(h.rjust(24) for h in header[1:]))
        lines += [row[0].ljust(width) + "".join(cell.rjust(24) for cell in row[1:]) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    results = {kind: bench_database(kind, args) for kind in args.db.split(",")}
    records = {kind: result["fill"]["records"] for kind, result in results.items()}
    print(f"\n{', '.join(f'{k}: {v:,} records' for k, v in records.items())}; "
          f"{os.cpu_count()} CPUs; {args.requests} requests per query; "
          f"{args.uploads} uploads by {args.clients} clients\n")
    print(render(results, args.markdown))


if __name__ == "__main__":
    main()
