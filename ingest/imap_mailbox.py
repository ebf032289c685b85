"""One IMAP session with a rua= mailbox: the few operations the collector needs, with the
server's failures turned into one error type that says what went wrong in words a user can act on.

Messages are addressed by UID within the selected folder, read with BODY.PEEK (so the \\Seen
flag a human may rely on is left alone) and moved with MOVE where the server has it, else
with COPY, \\Deleted and an expunge of those UIDs only (UIDPLUS), so that messages a user
marked deleted by hand are not swept away with ours.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from ingest.mailbox_config import DEFERRED_KEYWORD, MailboxConfig

log = logging.getLogger(__name__)

FETCH_BYTES = 32 * 1024 * 1024
"""Most bytes asked for in one FETCH: a batch of large messages is split below this."""


class MailboxError(Exception):
    """The mailbox cannot be used right now; `reason` is a stable code for metrics and the API."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    uid: int
    size: int
    body: bytes | None
    """None when the message is larger than asked for: it is not fetched at all."""


class MailboxSession:
    """A logged-in connection with the configured folder selected; use as a context manager."""

    def __init__(self, config: MailboxConfig) -> None:
        self.config = config
        self.client: IMAPClient | None = None
        self.can_move = False
        self.can_idle = False
        self.can_uid_expunge = False
        self.can_keyword = False

    # -- connecting -------------------------------------------------------------------------

    def __enter__(self) -> MailboxSession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        try:
            client = self._logged_in()
            with self._guard("select"):
                capabilities = {c.decode().upper() for c in client.capabilities()}
                self._ensure_folders()
                selected = client.select_folder(self.config.folder)
        except MailboxError:
            self.close()  # no context manager will: the caller's `with` never got the session
            raise
        self.can_move = "MOVE" in capabilities
        self.can_idle = "IDLE" in capabilities
        self.can_uid_expunge = "UIDPLUS" in capabilities
        permanent = {flag.decode() for flag in selected.get(b"PERMANENTFLAGS", ())}
        self.can_keyword = "\\*" in permanent or DEFERRED_KEYWORD in permanent

    def _logged_in(self) -> IMAPClient:
        config = self.config
        where = f"{config.host}:{config.effective_port}"
        try:
            self.client = IMAPClient(config.host, port=config.effective_port, ssl=config.tls == "ssl",
                                     ssl_context=config.ssl_context() if config.tls == "ssl" else None,
                                     timeout=config.timeout)
            if config.tls == "starttls":
                self.client.starttls(config.ssl_context())
            self.client.login(config.user, config.secret())
        except ssl.SSLCertVerificationError as exc:
            raise MailboxError("tls_untrusted", f"the TLS certificate of {where} is not trusted "
                               f"({exc.verify_message}); set ca_file to the CA that signed it") from exc
        except LoginError as exc:
            raise MailboxError("login_failed", f"{where} refused the login of {config.user!r}: "
                               f"{_describe(exc)}; check the user name and password") from exc
        except (OSError, IMAPClientError, imaplib.IMAP4.error) as exc:  # the network, the password file
            step = "connect to" if self.client is None else "log in to"
            raise MailboxError("connect_failed", f"cannot {step} {where}: {_describe(exc)}") from exc
        return self.client

    def _ensure_folders(self) -> None:
        assert self.client is not None
        config = self.config
        if not self.client.folder_exists(config.folder):
            raise MailboxError("folder_missing", f"the folder {config.folder!r} to read does not exist "
                               f"on {config.host} (folders: {', '.join(self._folder_names())})")
        for folder in (config.archive, config.invalid):
            if not self.client.folder_exists(folder):
                log.info("mailbox %s: creating folder %r", config.label, folder)
                self.client.create_folder(folder)

    def _folder_names(self) -> list[str]:
        assert self.client is not None
        return [str(name) for _flags, _delimiter, name in self.client.list_folders()]

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # the connection may be gone already: nothing is left to save
            with contextlib.suppress(Exception):
                client.shutdown()

    # -- reading --------------------------------------------------------------------------

    def pending_uids(self) -> list[int]:
        """UIDs waiting in the folder, oldest first; deferred messages are left out."""
        with self._guard("search") as client:
            self._arrivals()  # what was announced before this search is in its answer
            criteria: list[Any] = ["UNKEYWORD", DEFERRED_KEYWORD] if self.can_keyword else ["ALL"]
            return sorted(int(uid) for uid in client.search(criteria))

    def mail_arrived(self) -> bool:
        """Whether the server announced new mail (EXISTS) since the last search, in the answer to
        some other command (a MOVE, a FETCH): IDLE would not announce it again."""
        with self._guard("noop"):
            return self._arrivals()

    def _arrivals(self) -> bool:
        # imaplib keeps untagged answers it was not asked for; imapclient has no public view
        assert self.client is not None
        untagged: dict[str, list[bytes]] = self.client._imap.untagged_responses
        return bool(untagged.pop("EXISTS", None))

    def fetch(self, uids: Sequence[int], max_bytes: int) -> Iterator[FetchedMessage]:
        """The messages' bytes, in as few round trips as sizes allow; over max_bytes, no body."""
        with self._guard("fetch") as client:
            sizes = {int(uid): int(data[b"RFC822.SIZE"])
                     for uid, data in client.fetch(list(uids), ["RFC822.SIZE"]).items()}
        chunk: list[int] = []
        chunk_bytes = 0
        for uid in uids:
            if uid not in sizes:  # expunged meanwhile by someone else
                continue
            if sizes[uid] > max_bytes:
                yield FetchedMessage(uid, sizes[uid], None)
                continue
            if chunk and chunk_bytes + sizes[uid] > FETCH_BYTES:
                yield from self._bodies(chunk, sizes)
                chunk, chunk_bytes = [], 0
            chunk.append(uid)
            chunk_bytes += sizes[uid]
        if chunk:
            yield from self._bodies(chunk, sizes)

    def _bodies(self, uids: list[int], sizes: dict[int, int]) -> Iterator[FetchedMessage]:
        with self._guard("fetch") as client:
            fetched = client.fetch(uids, ["BODY.PEEK[]"])
        for uid in uids:
            data = fetched.get(uid)
            if data is not None and b"BODY[]" in data:
                yield FetchedMessage(uid, sizes[uid], bytes(data[b"BODY[]"]))

    # -- moving ---------------------------------------------------------------------------

    def move(self, uids: Sequence[int], folder: str) -> None:
        if not uids:
            return
        with self._guard("move") as client:
            if self.can_move:
                client.move(list(uids), folder)
                return
            client.copy(list(uids), folder)
            client.add_flags(list(uids), [b"\\Deleted"], silent=True)
            if self.can_uid_expunge:
                client.uid_expunge(list(uids))
            else:  # no UIDPLUS: a plain expunge also removes others' \Deleted messages
                client.expunge()

    def mark_deferred(self, uids: Sequence[int]) -> None:
        if uids and self.can_keyword:
            with self._guard("store") as client:
                client.add_flags(list(uids), [DEFERRED_KEYWORD.encode()], silent=True)

    # -- waiting --------------------------------------------------------------------------

    def wait_for_mail(self, seconds: float) -> bool:
        """Wait in IDLE up to `seconds`; True as soon as the server announces a change."""
        with self._guard("idle") as client:
            client.idle()
            try:
                responses = list(client.idle_check(timeout=seconds))
            finally:
                # mail announced just as IDLE ends comes with the answer to DONE
                responses += client.idle_done()[1]
        return any(len(response) > 1 and response[1] in (b"EXISTS", b"RECENT") for response in responses)

    def noop(self) -> None:
        with self._guard("noop") as client:
            client.noop()

    # -- errors ---------------------------------------------------------------------------

    def _guard(self, operation: str) -> _Guard:
        if self.client is None:
            raise MailboxError("disconnected", f"{operation}: not connected")
        return _Guard(self, operation)


class _Guard:
    """Turns the server's and the network's exceptions into MailboxError, naming the operation."""

    def __init__(self, session: MailboxSession, operation: str) -> None:
        self.session = session
        self.operation = operation

    def __enter__(self) -> IMAPClient:
        assert self.session.client is not None
        return self.session.client

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        if exc is None or isinstance(exc, MailboxError):
            return
        config = self.session.config
        where = f"{config.host}:{config.effective_port}"
        if isinstance(exc, socket.timeout | TimeoutError):
            raise MailboxError("timeout", f"{where} did not answer {self.operation} within "
                               f"{config.timeout:g} s") from exc
        if isinstance(exc, OSError | IMAPClientError | imaplib.IMAP4.error | imaplib.IMAP4.abort):
            raise MailboxError("server_error", f"{self.operation} on {where} failed: {_describe(exc)}") \
                from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
