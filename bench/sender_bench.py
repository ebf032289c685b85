"""Sender identification benchmark: raw network lookups, and 100k distinct sources identified.

What is measured:

* Network database: the load of the offline AS/country data (`NetworkDb.load()`), then
  `lookup()` over a million random public IPv4 addresses, twice: the first pass decodes the
  address ranges it lands in (done once per process), the second is the steady state.
* Identification: `ingest.source_enrichment.identify_sources`, the work `rua serve` and
  `rua sources identify` do, over N distinct public IPv4 sources (default 100,000) stored by
  ingesting aggregate reports through `IngestPipeline` (one record each, with a DKIM result),
  in a migrated SQLite database. DNS is a real NSD on loopback serving the reverse zones:
  60% of the addresses have a PTR name that resolves back (a third of those under catalogued
  domains such as google.com or sendgrid.net), 20% a PTR name that does not, 20% none. Run
  once cold (every PTR and A asked of NSD through dnspython, 16 at a time), then, with the
  identities cleared, warm: the same `TtlCache` answers. Warm is the figure the target is
  about (20,000 sources/s); it includes reading the sources and their records' DKIM and SPF
  domains, the network lookups, catalogue matching and writing the identities.

Usage: `.venv/bin/python bench/sender_bench.py [--ips 100000] [--lookups 1000000] [--markdown]`.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import update  # noqa: E402

from app.db import create_db_engine, upgrade_database  # noqa: E402
from app.models import SourceAddress, table_of  # noqa: E402
from ingest.dns_resolver import LiveResolver  # noqa: E402
from ingest.ip_network_db import NetworkDb  # noqa: E402
from ingest.limits import UnpackLimits  # noqa: E402
from ingest.pipeline import IngestPipeline  # noqa: E402
from ingest.reverse_dns import TtlCache  # noqa: E402
from ingest.sender_catalogue import SenderCatalogue  # noqa: E402
from ingest.source_enrichment import identify_sources  # noqa: E402
from tests import samples  # noqa: E402
from tests.dns_server import NsdServer, free_dns_port  # noqa: E402

CATALOGUED = ("google.com", "sendgrid.net", "amazonses.com", "outbound.protection.outlook.com")
NOT_PUBLIC = {0, 10, 100, 127, 169, 172, 192, 198, 203} | set(range(224, 256))
"""First octets left out, so every address is one some AS announces (most of them)."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def public_addresses(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        first = rng.randrange(1, 224)
        if first not in NOT_PUBLIC:
            found.add(f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
    return sorted(found)


def bench_lookups(count: int) -> dict[str, float]:
    started = time.perf_counter()
    db = NetworkDb.load()
    loaded = time.perf_counter() - started
    addresses = public_addresses(count, seed=1)
    rates = []
    for _ in range(2):
        lookup = db.lookup
        started = time.perf_counter()
        for ip in addresses:
            lookup(ip)
        rates.append(count / (time.perf_counter() - started))
    return {"load_s": loaded, "first_pass": rates[0], "lookups_per_s": rates[1]}


def serve_zones(nsd: NsdServer, addresses: list[str]) -> dict[str, int]:
    """Reverse zones per first octet; forward names under senders.test and catalogued domains."""
    reverse: dict[str, list[str]] = defaultdict(list)
    forward: dict[str, list[str]] = defaultdict(list)
    kinds = {"confirmed": 0, "unconfirmed": 0, "none": 0}
    for n, ip in enumerate(addresses):
        octets = ip.split(".")
        owner = ".".join(reversed(octets[1:]))
        roll = n % 10
        if roll < 6:
            zone = CATALOGUED[n % len(CATALOGUED)] if roll < 2 else "senders.test"
            reverse[octets[0]].append(f"{owner} IN PTR h{n}.{zone}.")
            forward[zone].append(f"h{n} IN A {ip}")
            kinds["confirmed"] += 1
        elif roll < 8:
            reverse[octets[0]].append(f"{owner} IN PTR u{n}.senders.test.")
            kinds["unconfirmed"] += 1
        else:
            kinds["none"] += 1
    for first, lines in reverse.items():
        nsd.set_zone(f"{first}.in-addr.arpa", lines, ttl=86400)
    for zone, lines in forward.items():
        nsd.set_zone(zone, lines, ttl=86400)
    nsd.reload(timeout=300)
    return kinds


def store_sources(url: str, data_dir: Path, addresses: list[str], workdir: Path) -> None:
    pipeline = IngestPipeline(create_db_engine(url), data_dir, UnpackLimits())
    per_report = 10_000
    for start in range(0, len(addresses), per_report):
        records = [samples.Rec(source_ip=ip, count="3", dkim_results=[("example.com", "s1", "pass")],
                               spf_results=[("example.com", "mfrom", "pass")])
                   for ip in addresses[start:start + per_report]]
        path = workdir / f"report-{start}.xml"
        path.write_bytes(samples.aggregate_xml(records, report_id=f"bench-{start}"))
        outcome = pipeline.ingest_path(path)
        assert outcome.reports[0].status == "new", outcome


def bench_identification(count: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="rua-bench-senders-"))
    addresses = public_addresses(count, seed=2)
    nsd = NsdServer(workdir / "nsd", free_dns_port())
    nsd.start()
    try:
        log(f"serving reverse DNS for {count:,} addresses")
        kinds = serve_zones(nsd, addresses)
        url = f"sqlite:///{workdir / 'rua.db'}"
        upgrade_database(url)
        log("storing the sources (ingesting reports)")
        store_sources(url, workdir / "data", addresses, workdir)
        engine = create_db_engine(url)
        catalogue = SenderCatalogue.load()
        NetworkDb.load()
        cache = TtlCache(LiveResolver([nsd.nameserver], timeout=2.0, lifetime=5.0), max_entries=4 * count)
        log("identifying, cold")
        cold = identify_sources(engine, cache, catalogue, workers=16)
        with engine.begin() as conn:
            conn.execute(update(table_of(SourceAddress)).values(identified_at=None))
        hits_before = cache.hits
        log("identifying, warm")
        warm = identify_sources(engine, cache, catalogue, workers=16)
        return {"sources": warm.sources, "kinds": kinds, "cold_per_s": cold.sources_per_second,
                "warm_per_s": warm.sources_per_second, "warm_s": warm.seconds, "matched": warm.matched,
                "cache_hits": cache.hits - hits_before, "misses_total": cache.misses,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        nsd.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ips", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=1_000_000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    log(f"network database: {args.lookups:,} lookups")
    lookups = bench_lookups(args.lookups)
    identified = bench_identification(args.ips)
    sources = identified["sources"]
    rows = [
        ("network database load", f"{lookups['load_s']:.2f} s", ""),
        ("AS/country lookups, first pass", f"{lookups['first_pass']:,.0f} /s", ""),
        ("AS/country lookups, steady", f"{lookups['lookups_per_s']:,.0f} /s", "200,000 /s"),
        (f"identification, cold DNS ({sources:,} sources)", f"{identified['cold_per_s']:,.0f} /s", ""),
        (f"identification, warm DNS ({sources:,} sources)", f"{identified['warm_per_s']:,.0f} /s",
         "20,000 /s"),
        ("catalogue matches", f"{identified['matched']:,}", ""),
        ("peak RSS", f"{identified['peak_rss_mb']:,.0f} MB", ""),
    ]
    if args.markdown:
        print("| measurement | result | target |\n| --- | --- | --- |")
        for row in rows:
            print(f"| {' | '.join(row)} |")
    else:
        for name, value, target in rows:
            print(f"{name:<48} {value:>14}  {target}")
    print(f"reverse DNS served: {identified['kinds']}; warm run cache hits {identified['cache_hits']:,}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
