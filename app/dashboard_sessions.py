"""Signed-in browsers, and the brake on guessing passwords.

A session is a row, not a signed cookie: signing out, deleting or disabling a user, or
changing a password ends it at once, everywhere. The throttle lives in the process (`rua
serve` is one process); a restart forgets it, which costs an attacker a restart per window.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select

from app.models import DashboardSession, DashboardUser, table_of

SESSIONS = table_of(DashboardSession)
USERS = table_of(DashboardUser)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who a request's cookie belongs to, and the CSRF token its forms must carry."""

    session_id: int
    user_id: int
    username: str
    csrf_token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(engine: Engine, user_id: int, lifetime: timedelta) -> str:
    """A new session for the user; returns the token for the cookie (kept nowhere else)."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(delete(SESSIONS).where(SESSIONS.c.expires_at < now))  # a little housekeeping
        conn.execute(SESSIONS.insert().values(token_hash=_digest(token), user_id=user_id,
                                              csrf_token=secrets.token_urlsafe(32), created_at=now,
                                              expires_at=now + lifetime))
    return token


def find_session(engine: Engine, token: str | None) -> SignedIn | None:
    """The live session of a cookie; None when it is unknown, expired, of a disabled user, or
    older than the user's last password change."""
    if not token or len(token) > 128:
        return None
    query = (select(SESSIONS.c.id, SESSIONS.c.user_id, SESSIONS.c.csrf_token, SESSIONS.c.created_at,
                    SESSIONS.c.expires_at, USERS.c.username, USERS.c.disabled, USERS.c.password_changed_at)
             .join(USERS, USERS.c.id == SESSIONS.c.user_id)
             .where(SESSIONS.c.token_hash == _digest(token)))
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.disabled:
        return None
    now = datetime.now(UTC)
    if _aware(row.expires_at) <= now or _aware(row.created_at) < _aware(row.password_changed_at):
        return None
    return SignedIn(row.id, row.user_id, row.username, row.csrf_token)


def end_session(engine: Engine, session_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(SESSIONS).where(SESSIONS.c.id == session_id))


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every one stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class LoginThrottle:
    """Refuses sign-ins after too many failures, per (address, username) and per address.

    Only failures count, so a user who types the password right is never slowed; a success
    clears that pair's failures.
    """

    def __init__(self, per_user: int = 5, per_address: int = 20, window: float = 900.0) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str, username: str) -> int:
        """Seconds until a sign-in from this address for this user may be tried; 0: now."""
        now = time.monotonic()
        with self._lock:
            waits = [self._wait((address, username.lower()), self.per_user, now),
                     self._wait((address, ""), self.per_address, now)]
        return max(waits)

    def failed(self, address: str, username: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in ((address, username.lower()), (address, "")):
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 10_000:  # bounded memory under a spray of usernames
                self._forget(now)

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._failures.pop((address, username.lower()), None)

    def _wait(self, key: tuple[str, str], limit: int, now: float) -> int:
        failures = self._failures.get(key)
        if not failures:
            return 0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < limit:
            return 0
        return max(1, int(failures[0] + self.window - now + 0.999))

    def _forget(self, now: float) -> None:
        stale = now - self.window
        for key in [key for key, times in self._failures.items() if not times or times[-1] <= stale]:
            del self._failures[key]
