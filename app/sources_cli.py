"""`rua sources`: who the source addresses are, from the command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

sources_cli = typer.Typer(help="Sender identification: reverse DNS, network and catalogue service.",
                          no_args_is_help=True)
err = Console(stderr=True)


@sources_cli.command("identify")
def identify(
    everything: Annotated[bool, typer.Option("--all", help="Identify every address again, not only "
                                                           "those never identified.")] = False,
    workers: Annotated[int, typer.Option(help="Reverse DNS lookups at once.")] = 16,
) -> None:
    """Look up reverse DNS, network and catalogue service of the source addresses, then make the
    reports whose sources changed identity (sender, service or type) due for judging (`rua align`)."""
    from datetime import UTC, datetime, timedelta

    from app.cli import _ready_engine, _settings
    from ingest.reverse_dns import TtlCache
    from ingest.source_enrichment import identify_sources
    from ingest.spf_include_index import snapshot_includes

    settings = _settings()
    engine = _ready_engine(settings)
    catalogue = settings.sender_catalogue()
    live = settings.live_resolver()
    looked = snapshot_includes(engine, live, catalogue, timedelta(seconds=settings.dns_snapshot_interval),
                               datetime.now(UTC))
    if looked:
        err.print(f"looked up {looked} catalogued SPF include(s)", highlight=False)
    stats = identify_sources(engine, TtlCache(live), catalogue, everything=everything, workers=workers)
    print(f"{stats.sources} source addresses identified ({stats.matched} by the sender catalogue, "
          f"{stats.retyped} changed type, {stats.regrouped} changed identity) in {stats.seconds:.1f} s")


@sources_cli.command("show")
def show(ip: Annotated[str, typer.Argument(help="A source address as reports give it.")],
         as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False) -> None:
    """What is known of one source address."""
    from sqlalchemy import select

    from app.cli import _ready_engine, _settings
    from app.models import SourceAddress, table_of
    from ingest.source_enrichment import IDENTITY_COLUMNS

    addresses = table_of(SourceAddress)
    engine = _ready_engine(_settings())
    with engine.connect() as conn:
        row = conn.execute(select(addresses).where(addresses.c.ip == ip.strip())).first()
    if row is None:
        err.print(f"{ip} is not a source address of any stored report")
        raise typer.Exit(1)
    shown = {"ip": row.ip, "messages": row.messages, "identified_at": row.identified_at,
             **{name: getattr(row, name) for name in IDENTITY_COLUMNS}}
    if as_json:
        print(json.dumps(shown, default=str))
        return
    if row.identified_at is None:
        print(f"{row.ip}: not identified yet (rua sources identify)")
        return
    for name, value in shown.items():
        if value is not None:
            print(f"{name:>14}  {value}")
