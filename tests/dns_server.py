"""A real authoritative DNS server (NSD) on loopback whose zones the tests write themselves.

`NsdServer` drives tests/services/nsd-start.sh, nsd-reload.sh and nsd-stop.sh: all its state is
in one directory, and it answers on 127.0.0.1:`port` over UDP and TCP. A test writes a zone with
`set_zone(zone, records)` (the SOA, with a serial that goes up on every write, and the NS record
are written for it), then `reload()`, which returns once every changed zone is served with its
new serial. Give `nameserver` to the code under test (the syntax of RUA_DNS_NAMESERVERS).

What NSD 4.6 answers, and so what the project's `LiveResolver` reports:
- a name in a zone: the records (ANSWER), NXDOMAIN, or NODATA (the name exists, not the type);
- a name in a zone set up with `broken_zone()` (configured, but its zone file does not exist):
  SERVFAIL, for the apex and every name below it;
- a name outside every zone: REFUSED, which LiveResolver reports as SERVFAIL too (dnspython
  raises NoNameservers when every server refused);
- `unreachable_nameserver()`: a UDP socket that never answers, for a TIMEOUT.

The server is shared by the tests of one xdist worker: take a zone of your own with
`new_zone_name()`. Reverse zones (2.0.192.in-addr.arpa) cannot be made unique: each worker has
its own server, and tests within a worker run one at a time, so a test simply (re)writes it.
"""

from __future__ import annotations

import atexit
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from tests.scripted_server import ScriptedServer

HOST = "127.0.0.1"
READY_ZONE = "nsd-ready.test"
"""Written by `start()` when no zone exists yet: NSD needs one, and the start script waits
until the first zone answers."""

_ZONE_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_SOA_SERIAL = re.compile(r"^@ IN SOA \S+ \S+ \( (\d+) ", re.MULTILINE)
_GONE = ("REFUSED", "NXDOMAIN", "NODATA")


class NsdError(RuntimeError):
    """A script failed, or NSD did not serve a change in time; the message says what it got."""


def nsd_installed() -> bool:
    return all(Path(f"/usr/sbin/{tool}").exists() for tool in ("nsd", "nsd-control", "nsd-checkzone"))


def free_dns_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (NSD binds both)."""
    while True:
        with socket.socket() as tcp:
            tcp.bind((HOST, 0))
            port = int(tcp.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((HOST, port))
        except OSError:
            continue
        return port


def txt(name: str, text: str | bytes) -> str:
    """A zone-file TXT line for `name` (relative to the origin, or absolute with a final dot)
    holding `text` as one record: split into character-strings of at most 255 bytes (the
    limit of one string), which resolvers join back. Quotes, backslashes and every byte
    outside printable ASCII are escaped, so any text (UTF-8 too) comes back unchanged."""
    data = text.encode() if isinstance(text, str) else text
    chunks = [data[start:start + 255] for start in range(0, len(data), 255)] or [b""]
    return f"{name} IN TXT " + " ".join(_quoted(chunk) for chunk in chunks)


def _quoted(chunk: bytes) -> str:
    out = []
    for byte in chunk:
        if byte in b'"\\':
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


_silent: socket.socket | None = None
_silent_lock = threading.Lock()


def unreachable_nameserver() -> str:
    """"127.0.0.1:PORT" of a UDP socket that is bound (so no ICMP "port unreachable" comes
    back) but never read: every query to it times out. It stays open until the process ends."""
    global _silent
    with _silent_lock:
        if _silent is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((HOST, 0))
            atexit.register(sock.close)
            _silent = sock
        return f"{HOST}:{_silent.getsockname()[1]}"


class NsdServer(ScriptedServer):
    """One NSD instance whose whole state is in `directory` (zones in directory/zones)."""

    host = HOST
    label = "NSD"
    command_word = b"nsd"
    pid_file_name = "nsd.pid"
    error = NsdError

    def __init__(self, directory: str | Path, port: int) -> None:
        self.directory = Path(directory)
        self.port = port
        self.zones_dir = self.directory / "zones"
        self.servfail_dir = self.directory / "servfail"
        self.log_file = self.directory / "nsd.log"
        self.pid: int | None = None
        self._serials: dict[str, int] = {}
        self._pending: dict[str, str] = {}  # zone -> what reload() waits for

    def __repr__(self) -> str:
        return f"NsdServer({self.host}:{self.port}, {self.directory})"

    @property
    def nameserver(self) -> str:
        """"127.0.0.1:PORT", as RUA_DNS_NAMESERVERS and LiveResolver take it."""
        return f"{self.host}:{self.port}"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> int:
        """Start (or find running) on the zones in the directory and wait until it answers,
        including every zone changed since the last reload; returns the PID."""
        self.zones_dir.mkdir(parents=True, exist_ok=True)
        if not any(self.zones_dir.glob("*.zone")):
            self.set_zone(READY_ZONE, [])
        out = self._script("nsd-start.sh", str(self.directory), str(self.port))
        self.pid = int(out.strip().splitlines()[-1])
        self._wait_pending(10.0)
        return self.pid

    def stop(self) -> None:
        """A clean shutdown (SIGTERM). The zones stay: `start()` serves them again."""
        self._script("nsd-stop.sh", str(self.directory))
        self.pid = None

    # -- zones ------------------------------------------------------------------------------

    def new_zone_name(self, prefix: str = "z") -> str:
        """A zone name under .test never used on this server, e.g. "z-0123456789ab.test"."""
        while True:
            zone = f"{prefix}-{uuid.uuid4().hex[:12]}.test".lower()
            if zone not in self._serials and not self._zone_file(zone).exists():
                return zone

    def set_zone(self, zone: str, records: str | Iterable[str], ttl: int = 60) -> int:
        """Write the zone file of `zone` (new or replaced); served after `reload()`.

        `records` are zone-file lines relative to the origin (a string may hold several
        lines), e.g. '@ IN TXT "v=spf1 -all"', '_dmarc IN TXT "v=DMARC1; p=reject"',
        'mail IN A 192.0.2.25', '@ IN MX 10 mail', '25 IN PTR mail.example.test.'; one
        quoted string may not exceed 255 bytes: build long TXT records with `txt()`.
        The SOA (serial one above the last one written, negative-answer TTL = `ttl`) and an
        NS record pointing at "localhost." are added, so no other name appears in the zone.
        Returns the serial."""
        zone = _zone(zone)
        lines = [records] if isinstance(records, str) else list(records)
        serial = self._next_serial(zone)
        text = "".join([
            f"$ORIGIN {zone}.\n",
            f"$TTL {ttl}\n",
            f"@ IN SOA localhost. hostmaster.localhost. ( {serial} 3600 600 86400 {ttl} )\n",
            "@ IN NS localhost.\n",
            *(line.rstrip("\n") + "\n" for line in lines),
        ])
        self.zones_dir.mkdir(parents=True, exist_ok=True)
        path = self._zone_file(zone)
        tmp = path.with_name(path.name + ".tmp")  # not *.zone: the scripts never see it
        tmp.write_text(text)
        tmp.replace(path)  # NSD never reads a half-written file
        (self.servfail_dir / zone).unlink(missing_ok=True)
        self._pending[zone] = str(serial)
        return serial

    def broken_zone(self, zone: str) -> None:
        """Make `zone` a zone NSD is configured for but cannot load (its zone file does not
        exist): after `reload()`, every query at or below it gets SERVFAIL."""
        zone = _zone(zone)
        self.servfail_dir.mkdir(parents=True, exist_ok=True)
        (self.servfail_dir / zone).touch()
        self._zone_file(zone).unlink(missing_ok=True)
        self._pending[zone] = "SERVFAIL"

    def remove_zone(self, zone: str) -> None:
        """Stop serving `zone` (after `reload()`): its names then get REFUSED."""
        zone = _zone(zone)
        self._zone_file(zone).unlink(missing_ok=True)
        (self.servfail_dir / zone).unlink(missing_ok=True)
        self._pending[zone] = "GONE"

    def zones(self) -> list[str]:
        """The zones with a zone file (served once reloaded), sorted."""
        return sorted(path.name.removesuffix(".zone") for path in self.zones_dir.glob("*.zone"))

    def reload(self, timeout: float = 10.0) -> None:
        """Make NSD serve the zones as written since the last reload (new, changed, broken and
        removed ones), without a restart, and return once it does: each changed zone's SOA is
        asked for directly until it has the new serial (SERVFAIL for a broken zone, no answer
        from it for a removed one). Raises NsdError if that does not happen within `timeout`."""
        if not self._pending:
            self._script("nsd-reload.sh", str(self.directory))  # re-reads files by mtime, waits
            return
        args = [f"{zone}={want}" if want.isdigit() else zone for zone, want in self._pending.items()]
        serving = self._serving_processes()
        self._script("nsd-reload.sh", "--no-wait", str(self.directory), *args)
        self._wait_pending(timeout)
        self._wait_replaced(serving, timeout)

    def _serving_processes(self) -> set[int]:
        """The processes that answer queries: the leaves of NSD's process tree (its main
        process forks one that forks the servers). A reload forks new servers; the old ones
        go on answering from the shared socket until they have quit."""
        main = self.pid or self._pid_from_file()
        if main is None:
            return set()
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
                ppid = int(stat.read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
            children.setdefault(ppid, []).append(int(stat.parent.name))
        leaves, stack = set(), list(children.get(main, []))
        while stack:
            pid = stack.pop()
            if pid in children:
                stack.extend(children[pid])
            else:
                leaves.add(pid)
        return leaves

    def _wait_replaced(self, serving: set[int], timeout: float) -> None:
        """Until the servers of before the reload have quit, once the new ones answer: an old
        one still answering made a test read a name of the zone as it was (seen under load).
        Should they linger past `timeout` the reload stands as it is: NSD serves the change."""
        deadline = time.monotonic() + timeout
        while serving and time.monotonic() < deadline:
            serving = {pid for pid in serving if _alive(pid)}
            if serving:
                time.sleep(0.005)

    def _wait_pending(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            got = {zone: self.soa_state(zone) for zone in self._pending}
            self._pending = {zone: want for zone, want in self._pending.items()
                             if not _matches(got[zone], want)}
            if not self._pending:
                return
            if time.monotonic() > deadline:
                wrong = ", ".join(f"{zone}: wanted {want}, got {got[zone]}"
                                  for zone, want in self._pending.items())
                raise NsdError(f"NSD on {self.nameserver} did not serve the change ({wrong}); "
                               f"log tail: {self._log_tail()}")
            time.sleep(0.01)

    def soa_state(self, zone: str, timeout: float = 0.5) -> str:
        """Ask this server (no recursion) for the SOA of `zone`: its serial as a string if it
        answers with the zone's own SOA, else "NODATA", an rcode such as "SERVFAIL",
        "REFUSED" or "NXDOMAIN", or "TIMEOUT"."""
        name = dns.name.from_text(_zone(zone))
        query = dns.message.make_query(name, dns.rdatatype.SOA)
        query.flags &= ~dns.flags.RD
        try:
            response = dns.query.udp(query, self.host, port=self.port, timeout=timeout)
        except (dns.exception.Timeout, OSError):
            return "TIMEOUT"
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            return dns.rcode.to_text(rcode)
        for rrset in response.answer:
            if rrset.name == name and rrset.rdtype == dns.rdatatype.SOA:
                return str(rrset[0].serial)
        return "NODATA"

    def _next_serial(self, zone: str) -> int:
        last = self._serials.get(zone)
        if last is None:  # a zone written by an earlier NsdServer on this directory
            try:
                match = _SOA_SERIAL.search(self._zone_file(zone).read_text())
            except OSError:
                match = None
            last = int(match.group(1)) if match else 0
        self._serials[zone] = last + 1
        return last + 1

    def _zone_file(self, zone: str) -> Path:
        return self.zones_dir / f"{zone}.zone"

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        kept = [line for line in text.splitlines() if "control c" not in line]
        return "\n".join(kept[-lines:])


def _zone(zone: str) -> str:
    name = zone.lower().removesuffix(".")
    if not _ZONE_NAME.fullmatch(name):
        raise ValueError(f"{zone!r} is not a zone name these scripts accept (letters, digits, '-', '_')")
    return name


def _matches(state: str, want: str) -> bool:
    if want == "GONE":
        return state in _GONE
    return state == want


def _alive(pid: int) -> bool:
    """Running, not exited (a zombie's /proc entry stays until its parent reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False
