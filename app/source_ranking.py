"""Rank and count the source addresses of a window without grouping all of the window.

A month can hold a hundred thousand distinct sources, most of them seen once. Grouping
every per-day row of the window by source, only to show the top hundred and their number,
costs a few hundred milliseconds however the grouping is done. Each source address keeps
its lifetime message count and the days it was first and last seen (written with the daily
totals, ingest.daily_totals), and those bound the answer:

* Ranking: a source's volume in any window is at most its lifetime count. Candidates are
  taken in falling lifetime order, a batch at a time, and summed exactly over the window;
  once the page's last volume is above the next candidate's lifetime count, no source not
  yet summed can reach the page, and the page is exact. When the bound is loose (an old
  window, a domain the big senders do not serve) the search gives up after a few batches
  and the caller groups the whole window as before.
* Counting: a source whose first and last days both lie inside the window certainly has
  mail in it; only the few whose lifetime straddles a window edge need a look at their
  per-day rows. This holds for the window and source networks alone: with a domain,
  disposition or DMARC filter, the lifetime figures say nothing, and the count groups.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import and_, distinct, func, literal, or_, select, tuple_
from sqlalchemy.engine import Connection

from app.models import UNDATED
from app.record_filter import ADDRESSES, SOURCE_TOTALS, RecordFilter

BATCHES = 4
"""Candidate batches summed before the search gives up and the caller groups the window."""
DEEPEST = 10_000
"""The deepest page end searched: a batch is twice as many ids, bound in one IN list, and the
databases cap a statement's parameters (PostgreSQL at 65,535). Deeper pages group the window."""


def top_sources(conn: Connection, flt: RecordFilter, limit: int, offset: int,
                batch: int | None = None) -> list[int] | None:
    """The ids of the page's sources by window volume (desc, then id), or None if undecided."""
    want = offset + limit
    if want > DEEPEST:
        return None
    size = batch or max(2 * want, 200)
    conditions = flt.totals_conditions(SOURCE_TOTALS)
    lifetime, source = ADDRESSES.c.messages, ADDRESSES.c.id
    volumes: dict[int, int] = {}
    after: tuple[int, int] | None = None
    for _ in range(BATCHES):
        candidates = (select(source, lifetime).where(*flt.address_conditions())
                      .order_by(lifetime.desc(), source.desc()).limit(size))
        if after is not None:
            candidates = candidates.where(tuple_(lifetime, source) < tuple_(*after))
        rows = conn.execute(candidates).all()
        if rows:
            window = (select(SOURCE_TOTALS.c.source_id, func.sum(SOURCE_TOTALS.c.messages))
                      .where(SOURCE_TOTALS.c.source_id.in_([row.id for row in rows]), *conditions)
                      .group_by(SOURCE_TOTALS.c.source_id))
            volumes.update((int(key), int(value or 0)) for key, value in conn.execute(window))
        ranked = sorted(volumes, key=lambda key: (-volumes[key], key))
        if len(rows) < size:  # every candidate has been summed
            return ranked[offset:want]
        after = (int(rows[-1].messages), int(rows[-1].id))
        if len(ranked) >= want and volumes[ranked[want - 1]] > after[0]:
            return ranked[offset:want]
    return None


def count_sources(conn: Connection, flt: RecordFilter) -> int:
    """The number of distinct sources with per-day rows matching the filter."""
    if flt.domains or flt.dispositions or flt.dmarc:
        count = select(func.count(distinct(SOURCE_TOTALS.c.source_id))).where(
            *flt.totals_conditions(SOURCE_TOTALS))
        return int(conn.execute(count).scalar_one())
    since, until = flt.window.since, flt.window.until
    overlapping = [*flt.address_conditions()]
    contained = [ADDRESSES.c.first_day > UNDATED]
    if since is not None:
        overlapping.append(ADDRESSES.c.last_day >= since.date())
        contained.append(ADDRESSES.c.first_day >= since.date())
    if until is not None:
        overlapping.append(ADDRESSES.c.first_day < until.date())
        contained.append(ADDRESSES.c.last_day < until.date())
    window_only = dataclasses.replace(flt, networks=())
    # a scalar subquery, not EXISTS, and after the OR: the per-day rows are probed for the few
    # straddling sources only, where PostgreSQL, misjudging how few they are, would otherwise
    # hash every row of the window first
    seen_in_window = select(literal(1)).where(
        SOURCE_TOTALS.c.source_id == ADDRESSES.c.id, *window_only.totals_conditions(SOURCE_TOTALS)
    ).limit(1).scalar_subquery().is_not(None)
    count = select(func.count()).select_from(ADDRESSES).where(
        *overlapping, or_(and_(*contained), seen_in_window))
    return int(conn.execute(count).scalar_one())
