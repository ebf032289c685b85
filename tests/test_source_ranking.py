"""The pruned ranking and the lifetime-based count of sources, against full grouping.

The history has a few heavy senders and a long tail of one-off addresses, like real reports,
so that lifetime bounds sometimes settle a page at once, sometimes need several batches and
sometimes give up. Whatever happens, the answer must be the one full grouping gives.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from app.grouped_query import grouped
from app.record_filter import RecordFilter
from app.source_ranking import DEEPEST, count_sources, top_sources
from ingest.pipeline import IngestPipeline
from tests import samples
from tests.test_read_queries import EPOCH, Stored, ingest, random_filter

HEAVY = [f"192.0.2.{n}" for n in range(1, 13)] + ["2001:db8::1", "2001:db8::ff"]


def heavy_tailed_history(pipeline: IngestPipeline, tmp_path: Path, rng: random.Random) -> None:
    for number in range(45):
        begin = EPOCH + timedelta(days=rng.randrange(60))
        end = begin + timedelta(days=rng.choice([1, 1, 1, 2])) - timedelta(seconds=1)
        if number == 9:
            begin = end = None  # type: ignore[assignment]
        records = []
        for _ in range(rng.randrange(2, 12)):
            heavy = rng.random() < 0.6
            ip = rng.choices(HEAVY, [1 / (k + 1) for k in range(len(HEAVY))])[0] if heavy else \
                f"198.51.100.{rng.randrange(1, 255)}"
            records.append(samples.Rec(source_ip=ip, count=str(rng.randrange(0, 300) if heavy else 1),
                                       disposition=rng.choice(["none", "quarantine"]),
                                       dkim=rng.choice(["pass", "fail"]), spf=rng.choice(["pass", "fail"])))
        ingest(pipeline, tmp_path, Stored(rng.choice(["google.com", "Yahoo"]),
                                          rng.choice(["example.com", "example.org"]), begin, end, records),
               f"h{number}")


def test_lifetime_figures_match_the_daily_rows(engine: Engine, pipeline: IngestPipeline,
                                               tmp_path: Path) -> None:
    heavy_tailed_history(pipeline, tmp_path, random.Random(3))
    with engine.connect() as conn:
        mismatched = conn.execute(text(
            "SELECT a.ip FROM source_address a JOIN (SELECT source_id, SUM(messages) m, MIN(first_day) f, "
            "MAX(last_day) l FROM daily_source_totals GROUP BY source_id) t ON t.source_id = a.id "
            "WHERE a.messages != t.m OR a.first_day != t.f OR a.last_day != t.l")).all()
        assert mismatched == []


def test_pruned_ranking_and_count_equal_full_grouping(engine: Engine, pipeline: IngestPipeline,
                                                      tmp_path: Path) -> None:
    rng = random.Random(11)
    heavy_tailed_history(pipeline, tmp_path, rng)
    outcomes = {"settled": 0, "gave up": 0}
    with engine.connect() as conn:
        for _ in range(150):
            flt = dataclasses.replace(random_filter(rng, whole_days=True), org_keys=(), header_from=())
            everything = [group.key for group in grouped(conn, flt, "source_ip", None, 0).groups]
            assert count_sources(conn, flt) == len(everything), flt
            ids = {ip: source_id for source_id, ip in conn.execute(text("SELECT id, ip FROM source_address"))}
            limit, offset = rng.choice([(1, 0), (3, 0), (5, 2), (10, 0), (4, 20)])
            for batch in (2, 5, None):
                page = top_sources(conn, flt, limit, offset, batch)
                if page is None:
                    outcomes["gave up"] += 1
                    continue
                outcomes["settled"] += 1
                assert page == [ids[ip] for ip in everything[offset:offset + limit]], (flt, batch)
            # and through the page the API answers, whichever way it was decided
            answer = grouped(conn, flt, "source_ip", limit, offset)
            assert [group.key for group in answer.groups] == everything[offset:offset + limit]
            assert answer.total == len(everything)
    assert outcomes["settled"] > 100 and outcomes["gave up"] > 0, outcomes


def test_count_of_an_open_window_includes_undated_reports(engine: Engine, pipeline: IngestPipeline,
                                                          tmp_path: Path) -> None:
    ingest(pipeline, tmp_path, Stored("Yahoo", "example.com", None, None,
                                      [samples.Rec(source_ip="203.0.113.5")]), "undated")
    with engine.connect() as conn:
        [source_id] = conn.execute(text("SELECT id FROM source_address WHERE ip = '203.0.113.5'")).scalars()
        assert count_sources(conn, RecordFilter()) == 1
        assert top_sources(conn, RecordFilter(), 10, 0) == [source_id]


def test_a_page_past_the_searched_depth_is_grouped_whole(engine: Engine, pipeline: IngestPipeline,
                                                         tmp_path: Path) -> None:
    """A candidate batch is bound in one IN list: pages deeper than DEEPEST group the window
    (it once sent 200,020 parameters, which PostgreSQL refuses)."""
    heavy_tailed_history(pipeline, tmp_path, random.Random(5))
    with engine.connect() as conn:
        assert top_sources(conn, RecordFilter(), 10, DEEPEST) is None
        everything = grouped(conn, RecordFilter(), "source_ip", None, 0)
        deep = grouped(conn, RecordFilter(), "source_ip", 10, DEEPEST + 5)
        assert (deep.groups, deep.total) == ([], everything.total)
