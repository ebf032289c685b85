"""Dashboard sessions and the sign-in throttle, against the real databases."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.dashboard_sessions import LoginThrottle, end_session, find_session, start_session
from app.dashboard_users import create_user, delete_user
from app.models import DashboardSession, DashboardUser, table_of
from tests.conftest import count_rows


def test_a_session_lives_until_it_ends(engine):
    user = create_user(engine, "carol", "a long enough password")
    assert user.id is not None
    token = start_session(engine, user.id, timedelta(hours=1))
    found = find_session(engine, token)
    assert found is not None and found.username == "carol" and len(found.csrf_token) >= 32
    assert find_session(engine, token + "x") is None and find_session(engine, None) is None
    assert count_rows(engine, "dashboard_session") == 1  # the token itself is not stored
    with engine.connect() as conn:
        assert token not in str(conn.execute(table_of(DashboardSession).select()).all())
    end_session(engine, found.session_id)
    assert find_session(engine, token) is None


def test_expiry_password_change_disabling_and_deletion_end_sessions(engine):
    user = create_user(engine, "dave", "a long enough password")
    assert user.id is not None
    users, sessions = table_of(DashboardUser), table_of(DashboardSession)
    expired = start_session(engine, user.id, timedelta(seconds=-1))
    assert find_session(engine, expired) is None
    live = start_session(engine, user.id, timedelta(hours=1))
    with engine.begin() as conn:
        conn.execute(update(users).values(password_changed_at=datetime.now(UTC) + timedelta(seconds=1)))
    assert find_session(engine, live) is None  # signed in before the password changed
    with engine.begin() as conn:
        conn.execute(update(users).values(password_changed_at=datetime.now(UTC) - timedelta(hours=1)))
    assert find_session(engine, live) is not None
    with engine.begin() as conn:
        conn.execute(update(users).values(disabled=True))
    assert find_session(engine, live) is None
    start_session(engine, user.id, timedelta(hours=1))  # also clears the expired row
    assert delete_user(engine, "dave")
    with engine.connect() as conn:
        assert conn.execute(sessions.select()).all() == []


def test_the_throttle_counts_failures_per_user_and_per_address():
    throttle = LoginThrottle(per_user=3, per_address=5, window=60)
    for _ in range(3):
        assert throttle.retry_after("192.0.2.1", "Eve") == 0
        throttle.failed("192.0.2.1", "Eve")
    assert 0 < throttle.retry_after("192.0.2.1", "eve") <= 60  # usernames as typed, case folded
    assert throttle.retry_after("192.0.2.2", "eve") == 0  # another address is not locked out
    assert throttle.retry_after("192.0.2.1", "frank") == 0
    throttle.failed("192.0.2.1", "frank")
    throttle.failed("192.0.2.1", "grace")
    assert throttle.retry_after("192.0.2.1", "heidi") > 0  # the address has tried too many names
    throttle.succeeded("192.0.2.1", "eve")
    assert throttle.retry_after("192.0.2.2", "eve") == 0


def test_failures_expire_with_the_window():
    throttle = LoginThrottle(per_user=1, per_address=10, window=0.05)
    throttle.failed("192.0.2.1", "ivan")
    assert throttle.retry_after("192.0.2.1", "ivan") > 0
    time.sleep(0.06)
    assert throttle.retry_after("192.0.2.1", "ivan") == 0
