"""The offline network database, read from the `plevin-db-network` package.

Known addresses are asked for by their long-stable facts (Google's and Cloudflare's AS numbers and
handles); the answers come from the shipped data, so an upgrade of the data package that broke the
reader, or changed its format, fails here.
"""

from __future__ import annotations

import ipaddress
import random
import re
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from ingest.aggregate_normaliser import packed_address
from ingest.ip_network_db import EMPTY, NetworkDb, NetworkInfo, network_db

V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


@pytest.fixture(scope="module")
def db() -> NetworkDb:
    return network_db()


def test_google_dns_ipv4(db: NetworkDb) -> None:
    info = db.lookup("8.8.8.8")
    assert info.asn == 15169
    assert info.as_name is not None and "GOOGLE" in info.as_name.upper()
    assert info.country == "US"
    assert info.network == "8.8.8.0/24"


def test_cloudflare_dns(db: NetworkDb) -> None:
    info = db.lookup("1.1.1.1")
    assert info.asn == 13335
    assert info.as_name == "CLOUDFLARENET"
    assert info.network == "1.1.1.0/24"


def test_google_ipv6(db: NetworkDb) -> None:
    info = db.lookup("2001:4860:4860::8888")
    assert info.asn == 15169
    assert info.as_name is not None and "GOOGLE" in info.as_name.upper()
    assert info.country == "US"
    assert info.network is not None and info.network.startswith("2001:4860:")
    assert info == db.lookup("2001:4860:4860:0:0:0:0:8888")  # any spelling of the address


def test_ipv4_mapped_ipv6_is_answered_as_ipv4(db: NetworkDb) -> None:
    assert db.lookup("::ffff:8.8.8.8") == db.lookup("8.8.8.8")
    assert db.lookup("::FFFF:0101:0101") == db.lookup("1.1.1.1")


def test_packed_form_as_stored(db: NetworkDb) -> None:
    """`lookup_packed` takes source_ip_packed exactly as the normaliser builds it."""
    for text in ("8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "10.0.0.1"):
        packed = packed_address(ipaddress.ip_address(text))
        assert len(packed) == 16
        assert db.lookup_packed(packed) == db.lookup(text)
    assert db.lookup_packed(bytearray(V4_MAPPED + socket.inet_aton("8.8.8.8"))).asn == 15169


def test_as_name_falls_back_to_the_company_when_the_handle_is_only_the_number(db: NetworkDb) -> None:
    # AS20712's registry handle is "AS20712"; its operator's name says more
    info = db.lookup("81.2.69.160")
    assert info.asn == 20712
    assert info.as_name is not None and not re.fullmatch(r"AS\d+", info.as_name)
    assert "andrews" in info.as_name.lower()


@pytest.mark.parametrize("ip", [
    "10.1.2.3", "127.0.0.1", "192.0.2.1", "192.168.1.1", "172.16.5.4", "100.64.0.1",
    "169.254.1.1", "198.51.100.7", "203.0.113.66", "224.0.0.1", "255.255.255.255", "0.0.0.0",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "2001:db8::1", "ff02::1",
    "::ffff:10.0.0.1", "::ffff:127.0.0.1",
])
def test_private_and_reserved_space_has_no_network(db: NetworkDb, ip: str) -> None:
    assert db.lookup(ip) == EMPTY


def test_reserved_space_ends_where_it_should(db: NetworkDb) -> None:
    # just past 10.0.0.0/8 and before 172.16.0.0/12 is public space again
    assert db.lookup("11.0.0.1").country is not None
    assert db.lookup("172.15.255.254").country is not None
    assert db.lookup("9.255.255.255").country is not None


@pytest.mark.parametrize("garbage", [
    "", "not an address", "8.8.8", "8.8.8.8.8", "256.1.1.1", " 8.8.8.8", "8.8.8.8\n", "1::2::3",
    "fe80::1%eth0", "08.8.8.8x", None, 134744072, b"8.8.8.8", 8.8,
])
def test_garbage_is_empty_and_never_raises(db: NetworkDb, garbage: object) -> None:
    assert db.lookup(garbage) == EMPTY  # type: ignore[arg-type]


@pytest.mark.parametrize("garbage", [b"", b"\x08\x08\x08\x08", b"x" * 15, b"x" * 17, None, "8.8.8.8", 7])
def test_bad_packed_input_is_empty(db: NetworkDb, garbage: object) -> None:
    assert db.lookup_packed(garbage) == EMPTY  # type: ignore[arg-type]


def test_answers_are_plain_values(db: NetworkDb) -> None:
    info = db.lookup("8.8.8.8")
    assert isinstance(info, NetworkInfo) and isinstance(info, tuple)
    assert info == NetworkInfo(info.asn, info.as_name, info.country, info.network)
    assert info._replace(asn=None).asn is None
    assert NetworkInfo(None, None, None, None) == EMPTY


def test_text_and_packed_lookups_agree_on_random_addresses(db: NetworkDb) -> None:
    rng = random.Random(20260401)
    for _ in range(3000):
        v4 = rng.getrandbits(32).to_bytes(4, "big")
        v6 = (0x2000 << 112 | rng.getrandbits(116)).to_bytes(16, "big")
        text4 = socket.inet_ntop(socket.AF_INET, v4)
        assert db.lookup(text4) == db.lookup_packed(V4_MAPPED + v4) == db.lookup(f"::ffff:{text4}")
        assert db.lookup(socket.inet_ntop(socket.AF_INET6, v6)) == db.lookup_packed(v6)


def test_answers_are_consistent(db: NetworkDb) -> None:
    """Over many public addresses: a network always holds the address, nearly every AS has a name
    (a few registries publish none for some), and a country is two capital letters."""
    rng = random.Random(7)
    with_as = named = 0
    for _ in range(5000):
        address = ipaddress.ip_address(rng.getrandbits(32))
        info = db.lookup(str(address))
        if info.network is not None:
            assert address in ipaddress.ip_network(info.network)
        if info.asn is not None:
            with_as += 1
            named += bool(info.as_name)
            assert info.asn > 0
        if info.country is not None:
            assert re.fullmatch(r"[A-Z]{2}", info.country)
        if not address.is_global:
            assert info == EMPTY
    assert with_as > 2500  # most of the IPv4 space is routed
    assert named > 0.95 * with_as


def test_loaded_once_per_process() -> None:
    assert network_db() is network_db()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", network_db().data_built)


def test_concurrent_first_lookups_match_sequential_ones() -> None:
    """Ranges and names are decoded on first use; threads racing on the same groups still agree."""
    fresh = NetworkDb.load()
    rng = random.Random(3)
    addresses = [socket.inet_ntop(socket.AF_INET, rng.getrandbits(32).to_bytes(4, "big"))
                 for _ in range(4000)] + ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"] * 50
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(fresh.lookup, addresses))
    assert concurrent == [network_db().lookup(address) for address in addresses]


def test_a_file_that_is_not_the_database_is_refused() -> None:
    with pytest.raises(ValueError, match="not a plevin"):
        NetworkDb(b"\x1f\x8b not this")
    with pytest.raises(ValueError, match="not a plevin"):
        NetworkDb(b"PLEVIN\x00\x03" + b"\x00" * 8)
