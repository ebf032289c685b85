"""Per-address rows summed by sender, largest first: the forwarding page's two tables.

A group is what sender identification named, else the address itself (ingest.address_group).
The rows come in one of two shapes, both turned into the same columns here:

- the judge's per-address class rows, which keep the group and identity their address had
  when they were judged, so a month of them is ranked without looking any address up (a row
  judged before its address was identified is grouped through its address as it is now);
- rows summed per address text from the records themselves, under a record-level filter,
  grouped through their addresses as they are now.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, case, func, literal_column, select, union_all
from sqlalchemy.engine import Connection

from app.models import ReportSourceClasses, SourceAddress, table_of
from ingest.address_group import group_key_of_address

IDENTITY = ("sender", "service", "service_type")
SOURCE_CLASSES = table_of(ReportSourceClasses)
ADDRESSES = table_of(SourceAddress)


def judged_rows(conn: Connection, columns: Sequence[ColumnElement[Any]],
                where: Sequence[ColumnElement[bool]]) -> FromClause:
    """The judge's per-address class rows under `where`, with `columns` (over them) beside each
    row's group, identity and address."""
    s, a = SOURCE_CLASSES.c, ADDRESSES.c
    kept = (select(s.group_key, s.keyed_by, s.sender, s.service, s.service_type,
                   literal_column("1").label("identified"), s.source_id.label("source"), *columns)
            .where(*where, s.group_key.is_not(None)))
    # Rows judged before their address was identified: usually none, as a look in the partial
    # index that holds only them shows. Where there are some, the window's rows are read
    # twice (SQLite, with no statistics of the index's size, reads them by report again).
    if conn.execute(select(s.report_id).where(s.group_key.is_(None)).limit(1)).first() is None:
        return kept.subquery("address_rows")
    ungrouped = (select(*_group_now(), *columns).join_from(SOURCE_CLASSES, ADDRESSES, a.id == s.source_id)
                 .where(*where, s.group_key.is_(None)))
    return union_all(kept, ungrouped).subquery("address_rows")


def address_rows(per_address: FromClause) -> FromClause:
    """Rows summed per address text (an `ip` column), with their addresses' groups as they are
    now; `ip` itself is left out."""
    a = ADDRESSES.c
    return (select(*_group_now(), *(column for column in per_address.c if column.name != "ip"))
            .join_from(per_address, ADDRESSES, a.ip == per_address.c.ip).subquery("address_rows"))


def _group_now() -> list[ColumnElement[Any]]:
    a = ADDRESSES.c
    key, keyed_by = group_key_of_address()
    identified = case((a.identified_at.is_not(None), literal_column("1")), else_=literal_column("0"))
    return [key.label("group_key"), keyed_by.label("keyed_by"), a.sender, a.service, a.service_type,
            identified.label("identified"), case((a.ip != "", a.id)).label("source")]


def rank_by_sender(conn: Connection, rows: FromClause, sums: tuple[str, ...], limit: int | None, *,
                   by_domain: bool = False, two_steps: bool = True) -> Sequence[Any]:
    """Sums of `rows` by group (and `domain` first, if `by_domain`), largest first, with what the
    group's addresses share and, beside each group, the number of groups and the volume of all
    of them.

    In two steps, the ranking sums only the messages of every group of the window (a month
    holds tens of thousands, most of them one address seen once), then the page's groups alone
    are summed in full: counting each group's distinct addresses makes a database sort every
    row, and SQLite sorts each row with all it carries. The caller says when reading the rows
    twice costs less than that: not for rows summed from the records on PostgreSQL, which
    counts in parallel workers. A request for every group takes one pass.
    """
    keys = [*([rows.c.domain] if by_domain else []), rows.c.group_key, rows.c.keyed_by]
    messages = func.sum(rows.c.messages)
    order = [messages.desc(), *keys[:-1]]
    ranking = [*keys, messages.label("messages"), func.count().over().label("group_count"),
               func.sum(messages).over().label("all_messages"),
               func.sum(func.sum(rows.c.records)).over().label("all_records")]
    shared = []
    for name in IDENTITY:  # null where the addresses differ, or one is not identified
        value = rows.c[name]
        same = and_(func.min(value) == func.max(value), func.count(value) == func.count(),
                    func.sum(rows.c.identified) == func.count())
        shared.append(case((same, func.min(value))).label(name))
    details = [func.sum(rows.c.records).label("records"),
               *(func.sum(rows.c[name]).label(name) for name in sums),
               func.count(func.distinct(rows.c.source)).label("sources"), *shared]
    if limit is None or not two_steps:
        return conn.execute(select(*ranking, *details).group_by(*keys).order_by(*order).limit(limit)).all()
    ranked = conn.execute(select(*ranking).group_by(*keys).order_by(*order).limit(limit)).all()
    if not ranked:
        return ranked
    page = [*([rows.c.domain.in_({row.domain for row in ranked})] if by_domain else []),
            rows.c.group_key.in_({row.group_key for row in ranked})]
    found = {tuple(row[:len(keys)]): row
             for row in conn.execute(select(*keys, *details).where(*page).group_by(*keys))}
    # a group whose rows changed group between the two statements (judged again, or named by
    # identification) is not found again: left out of this page, back in the next
    return [_Row({**row._asdict(), **found[key]._asdict()}) for row in ranked
            if (key := tuple(row[:len(keys)])) in found]


class _Row(dict[str, Any]):
    """A ranking row and its details, read as the one-pass query's rows are."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None
