"""IMAP backlog drain: report e-mails waiting in a real Dovecot, drained by `rua poll`.

What is measured, per database (SQLite, PostgreSQL) and per way of ingesting (`RUA_COLLECTOR_WORKERS`
left at its default, one worker process per core; and 1, everything in the collector's own
process, the baseline):

* `--messages` report e-mails (default 5,000) are appended once to a folder of a throw-away
  Dovecot started with tests/services/dovecot-start.sh, and copied server-side into INBOX
  before each run. They are what receivers send: a gzip, zip or bare-XML attachment (or a
  whole-body gzip, as Mimecast does) holding 1 to 20 records, from ten reporters about three
  domains; one in fifty is not a report at all (it must go to Invalid).
* The drain is one `rua poll` process, timed from start to exit (process start-up, worker
  start-up, every fetch, ingest, commit and MOVE included): messages/s. Peak RSS is the
  highest sum over the `rua poll` process and all its descendants, sampled every 20 ms.
* The result is checked: INBOX empty, every report in the store, the invalid ones in Invalid.

PostgreSQL is a throw-away server started with `tests/services/pg-start.sh` with its durable
defaults (PG_DURABLE=1: fsync on); SQLite runs with Rua's own settings (WAL, synchronous=FULL).

Usage: `.venv/bin/python bench/imap_bench.py [--messages 5000] [--db sqlite,postgresql] [--markdown]`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from api_bench import DOMAINS, ORGS, History, free_port, with_database  # noqa: E402
from imapclient import IMAPClient  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app.db import create_db_engine  # noqa: E402
from tests.samples import zipped  # noqa: E402

RUA = Path(sys.executable).parent / "rua"
SERVICES = REPO / "tests" / "services"
USER, PASSWORD = "bench", "secret"


def log(message: str) -> None:
    print(f"[imap-bench] {message}", file=sys.stderr, flush=True)


def report_emails(count: int, seed: int = 7) -> tuple[list[bytes], int]:
    """The backlog, and how many of its messages hold a report."""
    history = History(records=count * 10, days=30, seed=seed)
    rng = random.Random(seed)
    messages, reports = [], 0
    for number in range(count):
        if number % 50 == 49:
            note = MIMEText("Out of office until Monday.")
            note["Subject"] = "Automatic reply"
            messages.append(crlf(note.as_bytes()))
            continue
        org, domain = rng.choice(ORGS), rng.choice(DOMAINS)
        xml = history.report(rng.randrange(30), org, domain, rng.randrange(1, 21), tag=f"-{number}")
        name = f"{org}!{domain}!{number}"
        shape = rng.random()
        outer = MIMEMultipart("mixed")
        outer["From"] = f"noreply-dmarc-support@{org.replace(' ', '').lower()}"
        outer["To"] = f"dmarc@{domain}"
        outer["Subject"] = f"Report domain: {domain} Submitter: {org} Report-ID: <{number}>"
        outer.attach(MIMEText("This is an aggregate report from " + org))
        if shape < 0.6:
            part = MIMEApplication(gzip.compress(xml), "gzip")
            part.add_header("Content-Disposition", "attachment", filename=name + ".xml.gz")
        elif shape < 0.9:
            part = MIMEApplication(zipped({name + ".xml": xml}), "zip")
            part.add_header("Content-Disposition", "attachment", filename=name + ".zip")
        else:
            part = MIMEApplication(xml, "xml")
            part.add_header("Content-Disposition", "attachment", filename=name + ".xml")
        outer.attach(part)
        messages.append(crlf(outer.as_bytes()))
        reports += 1
    return messages, reports


def crlf(message: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Dovecot:
    def __init__(self, workdir: Path) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="rua-bench-imap-", dir="/tmp"))
        os.chmod(self.directory, 0o755)
        self.port = free_port()
        subprocess.run(["bash", str(SERVICES / "dovecot-start.sh"), str(self.directory), str(self.port), "0"],
                       check=True, capture_output=True, text=True, timeout=600)

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=60)
        client.login(USER, PASSWORD)
        return client

    def stop(self) -> None:
        subprocess.run(["bash", str(SERVICES / "dovecot-stop.sh"), str(self.directory)], check=False,
                       capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def fill_backlog(dovecot: Dovecot, messages: list[bytes]) -> float:
    started = time.perf_counter()
    with dovecot.client() as client:
        client.create_folder("Backlog")
        for message in messages:
            client.append("Backlog", message)
    return time.perf_counter() - started


def reset_inbox(dovecot: Dovecot) -> None:
    """Every folder emptied, then the whole backlog copied into INBOX (server-side)."""
    with dovecot.client() as client:
        for folder in ("INBOX", "Archive", "Invalid"):
            if client.folder_exists(folder):
                client.select_folder(folder)
                uids = client.search(["ALL"])
                if uids:
                    client.add_flags(uids, [b"\\Deleted"], silent=True)
                    client.expunge()
        client.select_folder("Backlog", readonly=True)
        client.copy(client.search(["ALL"]), "INBOX")


def folder_sizes(dovecot: Dovecot) -> dict[str, int]:
    with dovecot.client() as client:
        return {folder: client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"]
                for folder in ("INBOX", "Archive", "Invalid")}


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    stack.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def drain(dovecot: Dovecot, database_url: str, data_dir: Path, workers: str) -> dict[str, Any]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RUA_")}
    environment.update(RUA_DATABASE_URL=database_url, RUA_DATA_DIR=str(data_dir), RUA_IMAP_HOST="127.0.0.1",
                       RUA_IMAP_PORT=str(dovecot.port), RUA_IMAP_TLS="none", RUA_IMAP_USER=USER,
                       RUA_IMAP_PASSWORD=PASSWORD, RUA_COLLECTOR_WORKERS=workers, RUA_LOG_LEVEL="WARNING")
    started = time.perf_counter()
    process = subprocess.Popen([str(RUA), "poll", "--json"], env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate(timeout=3600)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"rua poll failed ({process.returncode}): {err[-2000:]}")
    return {"seconds": seconds, "peak_rss": peak, "result": json.loads(out.splitlines()[0])}


def bench_database(kind: str, dovecot: Dovecot, messages: int, reports: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"rua-bench-imap-{kind}-"))
    results: dict[str, Any] = {}

    def run(url: str) -> dict[str, Any]:
        for label, workers in (("workers (default)", "0"), ("in-process (1)", "1")):
            engine = create_db_engine(url)
            with engine.begin() as conn:  # each run starts from an empty store
                for table in ("daily_source_totals", "daily_totals", "record_spf_result",
                              "record_dkim_result", "record_reason", "aggregate_record", "report_origin",
                              "aggregate_report", "source_address", "original", "collector_mailbox"):
                    conn.execute(text(f"DELETE FROM {table}"))
            engine.dispose()
            shutil.rmtree(workdir / "data", ignore_errors=True)
            reset_inbox(dovecot)
            log(f"{kind}, {label}: draining {messages:,} messages")
            run_result = drain(dovecot, url, workdir / "data", workers)
            sizes = folder_sizes(dovecot)
            engine = create_db_engine(url)
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM aggregate_report")).scalar_one()
            engine.dispose()
            expected = {"INBOX": 0, "Archive": reports, "Invalid": messages - reports}
            if sizes != expected or stored != reports:
                raise RuntimeError(f"{kind} {label}: folders {sizes}, {stored} reports; expected {expected}")
            results[label] = {**run_result, "messages_per_second": messages / run_result["seconds"]}
            log(f"  {results[label]['messages_per_second']:.0f} messages/s, "
                f"peak RSS {run_result['peak_rss'] / 2**20:.0f} MB")
        return results

    try:
        return with_database(kind, workdir, run)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def render(results: dict[str, dict[str, Any]], messages: int, markdown: bool) -> str:
    rows = [[f"{kind}, {label}", f"{figures['messages_per_second']:.0f}", f"{figures['seconds']:.1f}",
             f"{figures['peak_rss'] / 2**20:.0f}"]
            for kind, by_label in results.items() for label, figures in by_label.items()]
    header = [f"drain of {messages:,} messages", "messages/s", "seconds", "peak RSS MB"]
    if markdown:
        return "\n".join(["| " + " | ".join(header) + " |", "|---|---:|---:|---:|",
                          *("| " + " | ".join(row) + " |" for row in rows)])
    width = max(len(row[0]) for row in [*rows, header]) + 2
    return "\n".join(row[0].ljust(width) + "".join(cell.rjust(14) for cell in row[1:])
                     for row in [header, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    emails, reports = report_emails(args.messages)
    dovecot = Dovecot(Path(tempfile.gettempdir()))
    try:
        log(f"appending {len(emails):,} messages ({sum(map(len, emails)) / 2**20:.1f} MB) to Dovecot")
        log(f"  appended in {fill_backlog(dovecot, emails):.1f} s")
        results = {kind: bench_database(kind, dovecot, len(emails), reports) for kind in args.db.split(",")}
    finally:
        dovecot.stop()
    print(render(results, len(emails), args.markdown))


if __name__ == "__main__":
    main()
