"""The `rua` command: ingest files, serve the web app, manage the database."""

from __future__ import annotations

import glob
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.account_cli import token_cli, user_cli
from app.db import SchemaNotReady, get_engine, require_current_schema, upgrade_database
from app.dns_cli import align, dns_cli, spf_cli
from app.settings import Settings, get_settings
from app.sources_cli import sources_cli
from ingest.collector_status import StatusBoard
from ingest.imap_collector import Collector
from ingest.pipeline import IngestPipeline, InputOutcome

cli = typer.Typer(help="Rua: a self-hosted DMARC report collector.", no_args_is_help=True,
                  add_completion=False)
db_cli = typer.Typer(help="Database schema management.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(token_cli, name="token")
cli.add_typer(user_cli, name="user")
cli.add_typer(spf_cli, name="spf")
cli.add_typer(dns_cli, name="dns")
cli.add_typer(sources_cli, name="sources")
cli.command()(align)

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:  # pydantic's ValidationError included
        _fail(f"invalid settings: {exc}")


def _database_trouble(settings: Settings, exc: SQLAlchemyError) -> NoReturn:
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    _fail(f"cannot use the database {where}: {reason}", 3)


def _ready_engine(settings: Settings) -> Engine:
    engine = get_engine(settings.database_url)
    try:
        require_current_schema(engine)
    except SchemaNotReady as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _database_trouble(settings, exc)
    return engine


def _pipeline(settings: Settings) -> IngestPipeline:
    return IngestPipeline(_ready_engine(settings), settings.data_dir, settings.unpack_limits,
                          settings.redact_local_parts)


def _expand(paths: list[str]) -> Iterator[str | Path]:
    """Files as given, folders recursively, globs expanded; '-' is standard input."""
    for given in paths:
        if given == "-":
            yield "-"
            continue
        path = Path(given)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.exists() or not glob.has_magic(given):
            yield path
        else:
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                yield path  # reported as missing
            for match in matches:
                match_path = Path(match)
                if match_path.is_dir():
                    yield from sorted(p for p in match_path.rglob("*") if p.is_file())
                else:
                    yield match_path


@cli.command()
def ingest(
    paths: Annotated[list[str] | None, typer.Argument(
        help="Files, folders (read recursively), globs, or - for standard input.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary object.")] = False,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Parse again every kept input that failed, was interrupted, or was "
                                "deferred (a kind an earlier version could not parse).")] = False,
) -> None:
    """Ingest report files; exits non-zero when any input failed."""
    if not paths and not retry_failed:
        _fail("give at least one PATH (or - for stdin), or --retry-failed")
    settings = _settings()
    pipeline = _pipeline(settings)
    started = time.perf_counter()
    outcomes: list[InputOutcome] = []
    targets = list(_expand(paths or []))
    try:
        _ingest_all(pipeline, targets, retry_failed, as_json, outcomes)
    except SQLAlchemyError as exc:
        # what was received is kept in the data directory; `--retry-failed` picks it up
        _database_trouble(settings, exc)
    elapsed = time.perf_counter() - started
    summary = _summary(outcomes, elapsed)
    if as_json:
        out.print_json(data=summary) if out.is_terminal else print(json.dumps(summary))
    else:
        _print_summary(summary)
    if summary["inputs_failed"]:
        raise typer.Exit(1)


def _ingest_all(pipeline: IngestPipeline, targets: list[str | Path], retry_failed: bool, as_json: bool,
                outcomes: list[InputOutcome]) -> None:
    show_progress = not as_json and err.is_terminal and (len(targets) > 1 or retry_failed)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), console=err,
                  disable=not show_progress, transient=True) as progress:
        task = progress.add_task("ingesting", total=len(targets) or None)
        for target in targets:
            if target == "-":
                outcome = pipeline.ingest_stream(sys.stdin.buffer, "stdin")
            else:
                outcome = pipeline.ingest_path(Path(target))
            outcomes.append(outcome)
            progress.advance(task)
            if not as_json:
                _print_outcome(outcome)
        if retry_failed:
            for outcome in pipeline.retry_failed():
                outcomes.append(outcome)
                progress.advance(task)
                if not as_json:
                    _print_outcome(outcome)


def _summary(outcomes: list[InputOutcome], elapsed: float) -> dict[str, object]:
    records = sum(o.records_new for o in outcomes)
    failures = []
    for outcome in outcomes:
        if outcome.error:
            failures.append({"input": outcome.source, "error": outcome.error})
        failures.extend({"input": report.location, "error": report.error or ""}
                        for report in outcome.reports if report.status == "failed")
    return {
        "inputs": len(outcomes),
        "inputs_failed": sum(1 for o in outcomes if o.status in ("failed", "partial")),
        "reports_new": sum(o.count("new") for o in outcomes),
        "reports_duplicate": sum(o.count("duplicate") for o in outcomes),
        "reports_failed": sum(o.count("failed") for o in outcomes),
        "reports_deferred": sum(o.count("deferred") for o in outcomes),
        "reports_conflicting": sum(1 for o in outcomes for r in o.reports if r.conflict_of),
        "records_new": records,
        "seconds": round(elapsed, 3),
        "records_per_second": round(records / elapsed, 1) if elapsed > 0 else None,
        "failures": failures,
        "results": [asdict(o) for o in outcomes],
    }


def _print_outcome(outcome: InputOutcome) -> None:
    for report in outcome.reports:
        if report.status == "failed":
            err.print(f"[red]failed[/red] {report.location}: {report.error}", highlight=False)
        elif report.conflict_of:
            err.print(f"[yellow]conflict[/yellow] {report.location}: same identity as report "
                      f"{report.conflict_of}, different content; kept as report {report.report_id}",
                      highlight=False)
    if outcome.error:
        err.print(f"[red]failed[/red] {outcome.source}: {outcome.error}", highlight=False)


def _print_summary(summary: dict[str, object]) -> None:
    rate = summary["records_per_second"]
    out.print(
        f"{summary['inputs']} inputs ({summary['inputs_failed']} failed) · reports: "
        f"{summary['reports_new']} new, {summary['reports_duplicate']} duplicate, "
        f"{summary['reports_failed']} failed, {summary['reports_deferred']} not parsed yet "
        f"(failure/TLS) · {summary['records_new']} records in {summary['seconds']} s"
        + (f" ({rate:,.0f} records/s)" if rate else ""), highlight=False)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the web app and JSON API."""
    import uvicorn

    from app.log_config import configure_logging

    settings = _settings()
    _ready_engine(settings)
    configure_logging(settings.log_level, settings.log_format)
    # logging is set up above; the app's middleware writes the access log, with request ids
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port,
                log_level=settings.log_level.lower(), log_config=None, access_log=False)


def _collector(settings: Settings) -> Collector:
    mailboxes = settings.all_mailboxes()
    if not mailboxes:
        _fail("no mailbox is configured: set RUA_IMAP_HOST, RUA_IMAP_USER and RUA_IMAP_PASSWORD, "
              "or add [[mailboxes]] tables to the file RUA_CONFIG names")
    pipeline = _pipeline(settings)
    return Collector(mailboxes, pipeline, StatusBoard(pipeline.store.engine),
                     workers=settings.ingest_workers())


@cli.command()
def poll(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per mailbox.")] = False,
) -> None:
    """Make one pass over every configured mailbox and exit (for cron); exit 1 if one failed."""
    from app.log_config import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    results = _collector(settings).poll()
    for result in results:
        if as_json:
            print(json.dumps({"mailbox": result.mailbox, "ok": result.ok, "archived": result.archived,
                              "invalid": result.invalid, "deferred": result.deferred,
                              "remaining": result.remaining, "error": result.error, "reason": result.reason}))
        elif result.ok:
            out.print(f"{result.mailbox}: {result.archived} archived, {result.invalid} invalid, "
                      f"{result.deferred} deferred (failure/TLS, left in place)", highlight=False)
        else:
            err.print(f"[red]{result.mailbox}:[/red] {result.error} ({result.reason}); "
                      f"{result.archived} archived before that", highlight=False)
    if not all(result.ok for result in results):
        raise typer.Exit(1)


@cli.command()
def collect() -> None:
    """Collect from every configured mailbox until interrupted (IDLE, or polling)."""
    import signal
    import threading

    from app.log_config import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    collector = _collector(settings)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    collector.start()
    err.print(f"collecting from {len(collector.mailboxes)} mailbox(es); Ctrl-C to stop", highlight=False)
    while not stopped.wait(1.0):
        pass
    collector.stop()


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply all pending schema migrations to RUA_DATABASE_URL."""
    settings = _settings()
    try:
        upgrade_database(settings.database_url)
    except SQLAlchemyError as exc:
        _database_trouble(settings, exc)
    err.print("database is up to date")
