"""The group the pages count a source address under: the sender identification named, else
the address itself.

An address sender identification has not reached, or could only call `unknown`, would
otherwise join one meaningless group of everything not yet named. The judge keeps each
address's group and identity on the per-address class rows it writes (report_source_classes),
so the forwarding page ranks a month of rows without looking each one's address up; a row
judged before its address was identified holds none, and is grouped through the address as it
is now (app.sender_ranking) until `fill_address_groups` gives it its group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, literal, select, update
from sqlalchemy.engine import Connection

from app.models import ReportSourceClasses, SourceAddress, table_of
from ingest.source_identity import UNKNOWN

KEYED_BY_SENDER = "sender"
KEYED_BY_IP = "ip"

ADDRESSES = table_of(SourceAddress)
SOURCE_CLASSES = table_of(ReportSourceClasses)
GROUP_COLUMNS = ("group_key", "keyed_by", "sender", "service", "service_type")
"""report_source_classes' copy of its address's group, in AddressGroup's order"""


@dataclass(frozen=True, slots=True)
class AddressGroup:
    key: str
    keyed_by: str
    """`sender` when identification named the address, `ip` when the address is its own group"""
    sender: str | None
    service: str | None
    service_type: str | None

    def values(self) -> tuple[str, str, str | None, str | None, str | None]:
        return self.key, self.keyed_by, self.sender, self.service, self.service_type


def address_group(ip: str, identified: bool, sender: str | None, service: str | None,
                  service_type: str | None) -> AddressGroup | None:
    """None for an address not identified yet: its group is not known, only pending."""
    if not identified:
        return None
    if sender is not None and sender != UNKNOWN:
        return AddressGroup(sender, KEYED_BY_SENDER, sender, service, service_type)
    return AddressGroup(ip, KEYED_BY_IP, sender, service, service_type)


def group_key_of_address() -> tuple[ColumnElement[str], ColumnElement[str]]:
    """`address_group`'s key and keyed_by, in SQL over source_address as it is now; an address
    not identified yet is its own group."""
    a = ADDRESSES.c
    named = and_(a.identified_at.is_not(None), a.sender.is_not(None), a.sender != UNKNOWN)
    return (case((named, a.sender), else_=a.ip),
            case((named, literal(KEYED_BY_SENDER)), else_=literal(KEYED_BY_IP)))


def fill_address_groups(conn: Connection) -> int:
    """Give the rows judged before their address was identified the group it has now.

    Only such rows lack one, and in the usual order (identification, then judging, in each
    cycle) there are none; a partial index holds exactly them, so finding none costs nothing.
    Rows whose address has changed group since are judged again instead (their reports are
    made due by ingest.source_enrichment), as its type may change their class too."""
    s, a = SOURCE_CLASSES.c, ADDRESSES.c
    key, keyed_by = group_key_of_address()
    by_id = a.id == s.source_id

    def of_address(column: ColumnElement[Any]) -> ColumnElement[Any]:
        # read by key for each row to fill: an UPDATE ... FROM may scan every address first
        return select(column).where(by_id).scalar_subquery()

    identified = select(a.id).where(by_id, a.identified_at.is_not(None)).exists()
    # looked for first, by reading: the UPDATE would take SQLite's write lock even to change nothing
    if conn.execute(select(s.report_id).where(s.group_key.is_(None), identified).limit(1)).first() is None:
        return 0
    filled = conn.execute(update(SOURCE_CLASSES)
                          .where(s.group_key.is_(None), identified)
                          .values({"group_key": of_address(key), "keyed_by": of_address(keyed_by),
                                   "sender": of_address(a.sender), "service": of_address(a.service),
                                   "service_type": of_address(a.service_type)}))
    return filled.rowcount
