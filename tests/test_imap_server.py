"""The `dovecot` fixture: a real Dovecot the suite starts, with TLS, fresh users and crashes."""

from __future__ import annotations

import socket
import ssl
import time

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.imap_server import DovecotServer


def message(subject: str) -> bytes:
    return (f"From: noreply-dmarc@example.net\r\nTo: dmarc@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@example.net>\r\n\r\nbody of {subject}\r\n").encode()


def test_login_plain(dovecot: DovecotServer) -> None:
    with dovecot.client() as imap:
        assert not isinstance(imap.socket(), ssl.SSLSocket)
        assert imap.select_folder("INBOX")[b"EXISTS"] >= 0
    with dovecot.client(login=False) as imap, pytest.raises(LoginError):
        imap.login(dovecot.user, "not-" + dovecot.password)


def test_login_implicit_tls_trusting_ca_file(dovecot: DovecotServer) -> None:
    with dovecot.client(tls=True) as imap:
        sock = imap.socket()
        assert isinstance(sock, ssl.SSLSocket)
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with IMAPClient("localhost", port=dovecot.tls_port, ssl_context=context, timeout=10) as imap:
        imap.login(dovecot.new_user(), dovecot.password)


def test_starttls_on_the_plain_port(dovecot: DovecotServer) -> None:
    with dovecot.client(login=False) as imap:
        assert b"STARTTLS" in imap.capabilities()
        imap.starttls(dovecot.ssl_context())
        assert isinstance(imap.socket(), ssl.SSLSocket)
        imap.login(dovecot.user, dovecot.password)


def test_the_self_signed_certificate_is_not_trusted_by_default(dovecot: DovecotServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(dovecot.host, port=dovecot.tls_port, ssl_context=ssl.create_default_context(),
                   timeout=10)
    with dovecot.client(login=False) as imap, pytest.raises(ssl.SSLCertVerificationError):
        imap.starttls(ssl.create_default_context())


def test_idle_and_move(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    with dovecot.client(user) as imap:
        assert {b"IDLE", b"MOVE", b"UIDPLUS"} <= set(imap.capabilities())
        imap.select_folder("INBOX")
        imap.idle()
        uid = dovecot.append(user, "INBOX", message("idle"))
        deadline = time.monotonic() + 10
        responses: list[tuple[int | bytes, ...]] = []
        while time.monotonic() < deadline and not any(r[1:2] == (b"EXISTS",) for r in responses):
            responses += imap.idle_check(timeout=1)
        imap.idle_done()
        assert any(r[1:2] == (b"EXISTS",) for r in responses), responses
        imap.create_folder("Archive")
        imap.move([uid], "Archive")
    assert dovecot.folder_uids(user) == []
    assert dovecot.folder_messages(user, "Archive") == [message("idle")]


def test_append_and_list(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    first = dovecot.append(user, "INBOX", message("one"))
    second = dovecot.append(user, "INBOX", message("two"), flags=[b"\\Seen"])
    archived = dovecot.append(user, "Reports/Done", message("three"))
    assert second > first
    assert dovecot.folders(user) == ["INBOX", "Reports", "Reports/Done"]
    assert dovecot.folder_uids(user) == [first, second]
    assert dovecot.folder_messages(user) == [message("one"), message("two")]
    assert dovecot.folder_flags(user) == {first: set(), second: {b"\\Seen"}}
    assert dovecot.folder_uids(user, "Reports/Done") == [archived]


def test_fresh_users_are_isolated(dovecot: DovecotServer) -> None:
    alice, bob = dovecot.new_user(), dovecot.new_user()
    assert alice != bob
    dovecot.append(alice, "Archive", message("alice"))
    assert dovecot.folders(bob) == ["INBOX"]
    assert dovecot.folder_uids(bob) == []
    assert dovecot.folder_messages(alice, "Archive") == [message("alice")]


def test_kill_then_restart_keeps_the_mail(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    uids = [dovecot.append(user, "INBOX", message(f"m{n}")) for n in range(3)]
    idle = dovecot.client(user)
    idle.select_folder("INBOX")
    try:
        dovecot.kill()
        assert not dovecot.is_running()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((dovecot.host, dovecot.port), timeout=5).close()
        with pytest.raises((OSError, IMAPClient.Error)):   # the open session died with it
            idle.noop()
    finally:
        idle.shutdown()
        dovecot.restart()
    assert dovecot.is_running()
    assert dovecot.folder_uids(user) == uids
    assert dovecot.folder_messages(user) == [message(f"m{n}") for n in range(3)]
    assert dovecot.append(user, "INBOX", message("after")) > uids[-1]


def test_deny_login(dovecot: DovecotServer) -> None:
    user = dovecot.new_user()
    dovecot.deny_login(user)
    try:
        with pytest.raises(LoginError):
            dovecot.client(user)
    finally:
        dovecot.allow_login(user)
    with dovecot.client(user) as imap:
        assert imap.select_folder("INBOX")[b"EXISTS"] == 0
