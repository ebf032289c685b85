"""A real Dovecot IMAP server on loopback that tests start, crash and restart themselves.

`DovecotServer` drives tests/services/dovecot-start.sh and dovecot-stop.sh: all its state is in
one directory, plain IMAP (with STARTTLS) on `port`, implicit TLS on `tls_port` with a
self-signed certificate at `ca_file`. Any user name logs in with the password `PASSWORD`
and gets its own Maildir, so `new_user()` gives a test an empty mailbox of its own; any
other password is refused, and `deny_login()` refuses a user whatever the password.

The helpers (`append`, `folder_uids`, ...) are the test's own IMAP client (imapclient),
independent of the code under test.
"""

from __future__ import annotations

import re
import ssl
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from imapclient import IMAPClient

from tests.scripted_server import ScriptedServer

PASSWORD = "secret"
DEFAULT_USER = "dmarc"

_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


class DovecotError(RuntimeError):
    """The start or stop script failed; the message ends with its output."""


class DovecotServer(ScriptedServer):
    """One Dovecot instance whose whole state is in `directory` (a 0755 dir, see service_dir)."""

    label = "Dovecot"
    command_word = b"dovecot"
    pid_file_name = "dovecot.pid"
    error = DovecotError

    def __init__(self, directory: str | Path, port: int, tls_port: int, host: str = "127.0.0.1") -> None:
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.password = PASSWORD
        self.user = DEFAULT_USER
        self.ca_file = self.directory / "tls" / "cert.pem"
        self.log_file = self.directory / "dovecot.log"
        self.mail_dir = self.directory / "mail"
        self.pid: int | None = None

    def __repr__(self) -> str:
        return f"DovecotServer({self.host}:{self.port}, tls {self.tls_port}, {self.directory})"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> int:
        """Start (or find running) and wait for the greeting; returns the master's PID."""
        out = self._script("dovecot-start.sh", str(self.directory), str(self.port), str(self.tls_port))
        self.pid = int(out.strip().splitlines()[-1])
        return self.pid

    def stop(self) -> None:
        """A clean shutdown: SIGTERM, then whatever is left of the instance is killed."""
        self._script("dovecot-stop.sh", str(self.directory))
        self.pid = None

    # -- clients ------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self, user: str | None = None, password: str | None = None, *, tls: bool = False,
               login: bool = True, timeout: float = 10) -> IMAPClient:
        """A connected client (logged in unless `login=False`), over implicit TLS if `tls`.
        Use it as a context manager: `with server.client(user) as imap: ...` logs out."""
        if tls:
            imap = IMAPClient(self.host, port=self.tls_port, ssl=True, ssl_context=self.ssl_context(),
                              timeout=timeout)
        else:
            imap = IMAPClient(self.host, port=self.port, ssl=False, timeout=timeout)
        if login:
            try:
                imap.login(user or self.user, self.password if password is None else password)
            except Exception:
                imap.shutdown()
                raise
        return imap

    # -- users ----------------------------------------------------------------------------------

    def new_user(self, prefix: str = "user") -> str:
        """A user name never used before on this server: its mailbox is empty (only INBOX)."""
        while True:
            name = f"{prefix}-{uuid.uuid4().hex[:12]}".lower()
            if not (self.mail_dir / name).exists():
                return name

    def deny_login(self, user: str) -> None:
        """Refuse `user`'s logins, even with the right password, until `allow_login`.
        Sessions already logged in go on. Waits (up to 1 s) until the server sees it."""
        names = self._denied()
        if user not in names:
            self._write_denied([*names, user])

    def allow_login(self, user: str) -> None:
        names = self._denied()
        if user in names:
            self._write_denied([name for name in names if name != user])

    def _denied(self) -> list[str]:
        path = self.directory / "denied-users"
        return path.read_text().split() if path.exists() else []

    def _write_denied(self, names: list[str]) -> None:
        # Dovecot re-reads a passwd-file at most once per second (and only when its size or
        # mtime changed): wait for the next second so the change is seen by the next login.
        path = self.directory / "denied-users"
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(f"{name}\n" for name in names))
        tmp.chmod(0o644)
        tmp.replace(path)
        time.sleep(1.05 - time.time() % 1)

    # -- mailbox helpers (each opens its own connection) ----------------------------------------

    def append(self, user: str, folder: str, message: bytes, flags: Iterable[str | bytes] = ()) -> int:
        """Store `message` in `folder` (created if missing); returns its UID."""
        with self.client(user) as imap:
            if folder.upper() != "INBOX" and not imap.folder_exists(folder):
                imap.create_folder(folder)
            response = imap.append(folder, message, flags=tuple(flags))
        match = _APPENDUID.search(response)
        if match is None:
            raise DovecotError(f"no APPENDUID in the APPEND response {response!r}")
        return int(match.group(1))

    def create_folder(self, user: str, folder: str) -> None:
        with self.client(user) as imap:
            imap.create_folder(folder)

    def folders(self, user: str) -> list[str]:
        with self.client(user) as imap:
            return sorted(str(name) for _flags, _sep, name in imap.list_folders())

    def folder_uids(self, user: str, folder: str = "INBOX") -> list[int]:
        """The UIDs in `folder`, ascending (the folder must exist)."""
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in imap.search("ALL"))

    def folder_messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        """The raw messages in `folder`, by ascending UID; does not set \\Seen."""
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            uids = imap.search("ALL")
            fetched = imap.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [bytes(fetched[uid][b"BODY[]"]) for uid in sorted(fetched)]

    def folder_flags(self, user: str, folder: str = "INBOX") -> dict[int, set[bytes]]:
        """UID -> flags (e.g. b"\\\\Seen"; not the session's \\Recent) of every message in `folder`."""
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            uids = imap.search("ALL")
            fetched = imap.fetch(uids, ["FLAGS"]) if uids else {}
            return {int(uid): set(data[b"FLAGS"]) - {b"\\Recent"} for uid, data in fetched.items()}
