"""The people who sign in to the dashboard; passwords are kept as argon2id hashes.

The login page comes with the dashboard; its form fields are `username` and `password`,
and it checks them with `verify_login`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from app.models import DashboardUser

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
"""argon2 reads all of a password: without a bound, one request could buy a long hash."""
MAX_USERNAME_LENGTH = 128


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


class UserExists(UserError):
    """The username is taken (the API answers 409 rather than 422)."""


def check_username(username: str) -> str:
    """The username as it will be kept; checked before a password is asked for."""
    username = username.strip()
    if not username or len(username) > MAX_USERNAME_LENGTH or not username.isprintable() \
            or any(ch.isspace() for ch in username):
        raise UserError(f"a username is 1 to {MAX_USERNAME_LENGTH} printable characters without spaces")
    return username


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"the password may be at most {MAX_PASSWORD_LENGTH} characters long")


def create_user(engine: Engine, username: str, password: str) -> DashboardUser:
    username = check_username(username)
    check_password(password)
    now = datetime.now(UTC)
    taken = UserExists(f"a user named {username!r} already exists")
    with Session(engine, expire_on_commit=False) as session:
        if session.scalars(select(DashboardUser).where(col(DashboardUser.username) == username)).first():
            raise taken
        user = DashboardUser(username=username, password_hash=_hasher.hash(password), created_at=now,
                             password_changed_at=now)
        session.add(user)
        try:
            session.commit()
        except IntegrityError:  # created by someone else while this password was being hashed
            raise taken from None
    return user


def list_users(engine: Engine) -> list[DashboardUser]:
    with Session(engine) as session:
        return list(session.scalars(select(DashboardUser).order_by(DashboardUser.id)))  # type: ignore[arg-type]


def delete_user(engine: Engine, username: str) -> bool:
    with Session(engine) as session:
        user = session.scalars(select(DashboardUser).where(col(DashboardUser.username) == username)).first()
        if user is None:
            return False
        session.delete(user)
        session.commit()
        return True


def verify_login(engine: Engine, username: str, password: str) -> DashboardUser | None:
    """The user when the password is right; None otherwise, in about the same time either way."""
    with Session(engine, expire_on_commit=False) as session:
        user = session.scalars(select(DashboardUser).where(col(DashboardUser.username) == username)).first()
        if user is None or user.disabled:
            _hasher.hash(password)  # spend the same effort, so timing does not reveal usernames
            return None
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
            session.commit()
        return user
