"""The group a source address is counted under: the same rule in Python, where the judge keeps
it on its rows, and in SQL, where the pages group rows that hold none."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from app.models import SourceAddress, table_of
from ingest.address_group import AddressGroup, address_group, group_key_of_address

ADDRESSES = table_of(SourceAddress)
WHEN = datetime(2026, 11, 1, tzinfo=UTC)
# ip, identified, sender, service, service type
ADDRESS_STATES = [
    ("192.0.2.1", False, None, None, None),  # not identified yet
    ("192.0.2.2", False, "Stale", None, None),  # a name without identification is not trusted
    ("192.0.2.3", True, "unknown", None, None),
    ("192.0.2.4", True, None, None, None),
    ("192.0.2.5", True, "Example Mail", "Example Mail", "esp"),
    ("192.0.2.6", True, "isp.example", None, None),
    ("", False, None, None, None),  # records without an address
]


def test_named_senders_group_their_addresses() -> None:
    assert address_group("192.0.2.1", False, "Example Mail", None, None) is None
    assert address_group("192.0.2.3", True, "unknown", None, None) == AddressGroup(
        "192.0.2.3", "ip", "unknown", None, None)
    assert address_group("192.0.2.4", True, None, None, None) == AddressGroup(
        "192.0.2.4", "ip", None, None, None)
    assert address_group("192.0.2.5", True, "Example Mail", "Example Mail", "esp").values() == (
        "Example Mail", "sender", "Example Mail", "Example Mail", "esp")


def test_sql_and_python_agree(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(ADDRESSES), [
            {"ip": ip, "sender": sender, "service": service, "service_type": kind,
             "identified_at": WHEN if identified else None}
            for ip, identified, sender, service, kind in ADDRESS_STATES])
        key, keyed_by = group_key_of_address()
        rows = conn.execute(select(ADDRESSES.c.ip, key, keyed_by)).all()
    found = {ip: (group_key, by) for ip, group_key, by in rows}
    for ip, identified, sender, service, kind in ADDRESS_STATES:
        group = address_group(ip, identified, sender, service, kind)
        # in SQL, an address not identified yet is its own group (the judge keeps none for it)
        assert found[ip] == ((group.key, group.keyed_by) if group else (ip, "ip")), ip
