"""`rua spf check`, `rua dns snapshot|history` and `rua align`: DNS from the command line.

Standard output carries the answer (a result word, a table, JSON); progress goes to standard
error, as in the other commands.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

spf_cli = typer.Typer(help="Check SPF live, as a receiver would.", no_args_is_help=True)
dns_cli = typer.Typer(help="DNS snapshots: the history alignment is judged against.", no_args_is_help=True)

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
FIRST_SIGHT_ONLY = timedelta(days=365 * 100)

# app.cli registers these sub-commands, so its helpers are imported where they are used.


@spf_cli.command("check")
def spf_check(
    ip: Annotated[str, typer.Option("--ip", help="The sending address, IPv4 or IPv6.")],
    mail_from: Annotated[str, typer.Option("--mail-from", help="The envelope sender (MAIL FROM); "
                                                                "empty to check the HELO name.")],
    helo: Annotated[str, typer.Option("--helo", help="The HELO/EHLO name.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Evaluate SPF live: the result word first, then why."""
    from app.cli import _fail, _settings
    from ingest.spf_evaluator import check_mail_from

    settings = _settings()
    if not mail_from and not helo:
        _fail("give --mail-from, or --helo for a null sender")
    try:
        result = check_mail_from(settings.live_resolver(), ip, mail_from, helo or "unknown")
    except ValueError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps({"result": str(result.result), "domain": result.domain, "reason": result.reason,
                          "mechanism": result.mechanism, "mechanism_domain": result.mechanism_domain,
                          "explanation": result.explanation, "dns_terms": result.dns_terms,
                          "void_lookups": result.void_lookups,
                          "lookups": [{"name": a.name, "type": a.rdtype, "outcome": str(a.outcome),
                                       "records": list(a.records)} for a in result.lookups]}))
        return
    print(f"{result.result} {result.reason}")
    if result.explanation:
        print(f"explanation: {result.explanation}")
    print(f"checked {result.domain}: {result.dns_terms} DNS-querying terms, "
          f"{result.void_lookups} void lookups")


@dns_cli.command("snapshot")
def dns_snapshot(
    domain: Annotated[str | None, typer.Argument(
        help="Only this domain (and the DKIM keys seen signing for it); default: all watched.")] = None,
) -> None:
    """Look up the watched DNS now, add it to the history, and judge the reports it affects."""
    from app.cli import _ready_engine, _settings
    from ingest.dns_source import domain_name
    from ingest.dns_watch import Targets, snapshot_and_mark, watch_targets
    from ingest.recompute import recompute

    settings = _settings()
    engine = _ready_engine(settings)
    targets = watch_targets(engine, settings.configured_domains())
    if domain:
        name = domain_name(domain)
        targets = Targets(domains={name}, dkim_keys={(d, s) for d, s in targets.dkim_keys
                                                     if d == name or d.endswith(f".{name}")})
    err.print(f"looking up {len(targets.domains)} domain(s) and {len(targets.dkim_keys)} DKIM key(s)",
              highlight=False)
    run = snapshot_and_mark(engine, settings.live_resolver(), targets)
    print(f"{run.answers} answers recorded, {len(run.changed)} new or changed")
    for name, rdtype in sorted(run.changed):
        print(f"  changed: {name} {rdtype}")
    for failure in run.failures:
        print(f"  failed: {failure}")
    stats = recompute(engine)
    print(f"{stats.records} records of {stats.reports} reports judged again")


@dns_cli.command("history")
def dns_history(
    domain: Annotated[str, typer.Argument(help="The domain; names under it are included.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every recorded interval of a domain's DNS: what was served, from when to when."""
    from app.cli import _ready_engine, _settings
    from ingest.dns_snapshot_store import domain_intervals
    from ingest.dns_source import domain_name

    engine = _ready_engine(_settings())
    with engine.connect() as conn:
        intervals = domain_intervals(conn, domain_name(domain))
    if as_json:
        print(json.dumps([_interval_json(interval) for interval in intervals]))
        return
    if not intervals:
        err.print(f"nothing recorded for {domain}; run `rua dns snapshot {domain}`", highlight=False)
        raise typer.Exit(1)
    table = Table(box=box.SIMPLE)
    for column in ("name", "type", "outcome", "records", "first seen", "last seen", "checks"):
        table.add_column(column)
    for interval in intervals:
        table.add_row(interval.name, interval.rdtype, str(interval.outcome), "\n".join(interval.records),
                      f"{interval.first_seen:%Y-%m-%d %H:%M}", f"{interval.last_seen:%Y-%m-%d %H:%M}",
                      str(interval.checks))
    out.print(table)


def _interval_json(interval: Any) -> dict[str, Any]:
    return {"name": interval.name, "type": interval.rdtype, "outcome": str(interval.outcome),
            "records": list(interval.records), "ttl": interval.ttl,
            "first_seen": interval.first_seen.isoformat(), "last_seen": interval.last_seen.isoformat(),
            "checks": interval.checks}


def align(
    recompute_all: Annotated[bool, typer.Option("--recompute", help="Judge every record again, not only "
                                                                    "those not judged yet.")] = False,
    domain: Annotated[list[str] | None, typer.Option("--domain", help="Only reports of this policy "
                                                                      "domain (repeatable).")] = None,
    snapshot: Annotated[bool, typer.Option(help="First look up domains and keys never looked up, and "
                                                "identify source addresses never identified.")] = True,
    workers: Annotated[int, typer.Option(help="Processes that share the judging; 0: one per core "
                                              "(at most 4).")] = 0,
) -> None:
    """Judge records against the DNS history: alignment, DMARC result, reasons and class."""
    from app.cli import _ready_engine, _settings
    from ingest.dns_watch import due_targets, snapshot_and_mark, watch_targets
    from ingest.recompute import RecomputeStats, recompute
    from ingest.reverse_dns import TtlCache
    from ingest.source_enrichment import identify_sources
    from ingest.spf_include_index import snapshot_includes

    settings = _settings()
    engine = _ready_engine(settings)
    if snapshot:
        targets = due_targets(engine, watch_targets(engine, settings.configured_domains(),
                                                    due_reports_only=not recompute_all), FIRST_SIGHT_ONLY)
        if targets.domains or targets.dkim_keys:
            err.print(f"first sight: looking up {len(targets.domains)} domain(s) and "
                      f"{len(targets.dkim_keys)} DKIM key(s)", highlight=False)
            snapshot_and_mark(engine, settings.live_resolver(), targets)
        # who the sources are takes part in the class: identify those never identified first
        catalogue = settings.sender_catalogue()
        snapshot_includes(engine, settings.live_resolver(), catalogue, FIRST_SIGHT_ONLY, datetime.now(UTC))
        found = identify_sources(engine, TtlCache(settings.live_resolver()), catalogue)
        if found.sources:
            err.print(f"first sight: identified {found.sources} source address(es), {found.matched} by the "
                      "sender catalogue", highlight=False)

    def progress(stats: RecomputeStats) -> None:
        err.print(f"  {stats.records} records, {stats.reports} reports, "
                  f"{stats.records_per_second:,.0f} records/s", highlight=False)

    count = workers or min(4, os.cpu_count() or 1)
    stats = recompute(engine, everything=recompute_all, domains=domain, progress=progress, workers=count)
    print(f"{stats.records} records of {stats.reports} reports judged in {stats.seconds:.1f} s "
          f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
