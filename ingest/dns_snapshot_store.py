"""Writing live answers into the interval history, and reading it back.

Only this module knows the `dns_snapshot` table; the rest of the pipeline sees
`SnapshotInterval` and `DnsHistory`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_
from sqlalchemy.engine import Connection

from app.models import DnsSnapshot, table_of
from ingest.dns_history import DnsHistory, Key, SnapshotInterval, canonical_records
from ingest.dns_source import DnsAnswer, DnsOutcome, RecordType, domain_name

SNAPSHOTS = table_of(DnsSnapshot)
_BATCH = 400


def record_answers(conn: Connection, answers: Iterable[DnsAnswer], at: datetime) -> set[Key]:
    """Add what was seen at `at`; returns the keys whose answer changed or was new.

    A later answer for a key already checked after `at` (a slow check finishing late) still
    extends or opens an interval only forward in time, so history stays ordered.
    """
    by_key: dict[Key, DnsAnswer] = {(answer.name, answer.rdtype): answer for answer in answers}
    latest = _latest(conn, list(by_key))
    changed: set[Key] = set()
    inserts: list[dict[str, Any]] = []
    for key, answer in by_key.items():
        current = latest.get(key)
        if current is not None and current[1].same_answer(answer):
            row_id, interval = current
            conn.execute(SNAPSHOTS.update().where(SNAPSHOTS.c.id == row_id).values(
                last_seen=max(interval.last_seen, at), ttl=answer.ttl, checks=SNAPSHOTS.c.checks + 1))
            continue
        changed.add(key)
        first_seen = at if current is None else max(at, current[1].last_seen)
        inserts.append({"name": answer.name, "rdtype": answer.rdtype, "outcome": str(answer.outcome),
                        "records": list(canonical_records(answer.records)), "ttl": answer.ttl,
                        "first_seen": first_seen, "last_seen": first_seen, "checks": 1})
    if inserts:
        conn.execute(SNAPSHOTS.insert(), inserts)
    return changed


def _latest(conn: Connection, keys: list[Key]) -> dict[Key, tuple[int, SnapshotInterval]]:
    found: dict[Key, tuple[int, SnapshotInterval]] = {}
    for start in range(0, len(keys), _BATCH):
        chunk = keys[start:start + _BATCH]
        newest = (select(SNAPSHOTS.c.name, SNAPSHOTS.c.rdtype,
                         func.max(SNAPSHOTS.c.first_seen).label("first_seen"))
                  .where(tuple_(SNAPSHOTS.c.name, SNAPSHOTS.c.rdtype).in_(chunk))
                  .group_by(SNAPSHOTS.c.name, SNAPSHOTS.c.rdtype).subquery())
        rows = conn.execute(select(SNAPSHOTS).join(newest, and_(
            SNAPSHOTS.c.name == newest.c.name, SNAPSHOTS.c.rdtype == newest.c.rdtype,
            SNAPSHOTS.c.first_seen == newest.c.first_seen)))
        for row in rows:
            found[(row.name, row.rdtype)] = (row.id, _interval(row))
    return found


def load_history(conn: Connection, names: Iterable[str] | None = None) -> DnsHistory:
    """The intervals of `names` (every name when None), ready for replay."""
    query = select(SNAPSHOTS)
    if names is None:
        return DnsHistory.of(_interval(row) for row in conn.execute(query))
    wanted = sorted(set(names))
    intervals: list[SnapshotInterval] = []
    for start in range(0, len(wanted), _BATCH):
        rows = conn.execute(query.where(SNAPSHOTS.c.name.in_(wanted[start:start + _BATCH])))
        intervals.extend(_interval(row) for row in rows)
    return DnsHistory.of(intervals)


def domain_intervals(conn: Connection, domain: str) -> list[SnapshotInterval]:
    """Every interval of `domain` and the names under it (_dmarc, DKIM keys, hosts)."""
    rows = conn.execute(select(SNAPSHOTS).where(_under(domain))
                        .order_by(SNAPSHOTS.c.name, SNAPSHOTS.c.rdtype, SNAPSHOTS.c.first_seen))
    return [_interval(row) for row in rows]


def domain_checked_at(conn: Connection, domain: str) -> datetime | None:
    """The latest lookup of the domain or a name under it; None if there was none."""
    latest = select(func.max(SNAPSHOTS.c.last_seen)).where(_under(domain))
    when: datetime | None = conn.execute(latest).scalar()
    return when


def dkim_key_names(conn: Connection, domain: str) -> list[str]:
    """The `<selector>._domainkey.<domain>` names ever looked up."""
    names = conn.execute(select(SNAPSHOTS.c.name).distinct().where(
        SNAPSHOTS.c.rdtype == "TXT", SNAPSHOTS.c.name.endswith(f"._domainkey.{domain}", autoescape=True)))
    return sorted(names.scalars())


def _under(domain: str) -> ColumnElement[bool]:
    return or_(SNAPSHOTS.c.name == domain, SNAPSHOTS.c.name.endswith(f".{domain}", autoescape=True))


def last_checked(conn: Connection, names: Iterable[str], rdtype: str = "TXT") -> dict[str, datetime]:
    """When each name was last looked up, for the ones that ever were."""
    wanted = sorted(set(names))
    seen: dict[str, datetime] = {}
    for start in range(0, len(wanted), _BATCH):
        rows = conn.execute(select(SNAPSHOTS.c.name, func.max(SNAPSHOTS.c.last_seen))
                            .where(SNAPSHOTS.c.rdtype == rdtype,
                                   SNAPSHOTS.c.name.in_(wanted[start:start + _BATCH]))
                            .group_by(SNAPSHOTS.c.name))
        seen.update({name: when for name, when in rows})
    return seen


def _interval(row: Any) -> SnapshotInterval:
    return SnapshotInterval(name=row.name, rdtype=row.rdtype, outcome=DnsOutcome(row.outcome),
                            records=tuple(row.records), ttl=row.ttl, first_seen=row.first_seen,
                            last_seen=row.last_seen, checks=row.checks)


class LatestSource:
    """The DNS as last recorded, read from the store one question at a time: for pages that ask
    a few dozen questions, where loading the whole history would be waste. A name never looked
    up answers as a timeout, as in `HistorySource`, and is listed in `missing`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.missing: set[Key] = set()
        self.used: dict[Key, SnapshotInterval] = {}

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        shown = domain_name(name)
        if (shown, rdtype) in self.used:  # the checks of one page ask some names twice
            return self.used[(shown, rdtype)].answer()
        if (shown, rdtype) in self.missing:
            return DnsAnswer(shown, rdtype, DnsOutcome.TIMEOUT)
        row = self._conn.execute(
            select(SNAPSHOTS).where(SNAPSHOTS.c.name == shown, SNAPSHOTS.c.rdtype == rdtype)
            .order_by(SNAPSHOTS.c.first_seen.desc()).limit(1)).first()
        if row is None:
            self.missing.add((shown, rdtype))
            return DnsAnswer(shown, rdtype, DnsOutcome.TIMEOUT)
        interval = self.used[(shown, rdtype)] = _interval(row)
        return interval.answer()
