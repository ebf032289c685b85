"""API tokens: created with a scope, shown once, kept only as a hash, revocable.

A token is 256 random bits, so a plain SHA-256 of it is as safe to keep as a slow password
hash and lets every request find its token with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col

from app.db import BEGIN_MODE
from app.models import ApiToken

log = logging.getLogger(__name__)

TOKEN_PREFIX = "rua_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""last_used_at is refreshed at most this often, so reads do not turn into writes."""
MAX_NAME_LENGTH = 128
MAX_ID = 2**31 - 1
"""ids are 32-bit integers in the schema; larger numbers name no token (and SQLite cannot bind them)"""


class TokenError(ValueError):
    """A token could not be made as asked; the message says why."""


class Scope(StrEnum):
    INGEST = "ingest"
    """upload reports"""
    READ = "read"
    """read reports and analytics"""
    ADMIN = "admin"
    """everything, including tokens and users"""

    def allows(self, needed: Scope) -> bool:
        return self is needed or self is Scope.ADMIN


@dataclass(frozen=True, slots=True)
class NewToken:
    token: str
    """the secret itself: shown to its owner once, never stored"""
    record: ApiToken


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def check_token_name(name: str) -> str:
    """The name as it will be kept. All-digit names are refused: `revoke` takes an id or a
    name, and a name that reads as an id would make that ambiguous."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise TokenError(f"a token name is 1 to {MAX_NAME_LENGTH} printable characters")
    if name.isdigit():
        raise TokenError("a token name may not be all digits (numbers name token ids)")
    return name


def create_token(engine: Engine, name: str, scope: Scope) -> NewToken:
    name = check_token_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(name=name, scope=str(scope), token_hash=hash_token(token),
                      prefix=token[:len(TOKEN_PREFIX) + 6], created_at=datetime.now(UTC))
    with Session(engine, expire_on_commit=False) as session:
        session.add(record)
        session.commit()
    return NewToken(token, record)


def list_tokens(engine: Engine, include_revoked: bool = False) -> list[ApiToken]:
    with Session(engine) as session:
        query = select(ApiToken).order_by(ApiToken.id)  # type: ignore[arg-type]
        if not include_revoked:
            query = query.where(ApiToken.revoked_at.is_(None))  # type: ignore[union-attr]
        return list(session.scalars(query))


def revoke_tokens(engine: Engine, id_or_name: str) -> list[ApiToken]:
    """Revoke the token with this id, or every live token with this name; returns them."""
    condition = col(ApiToken.name) == id_or_name
    if id_or_name.isascii() and id_or_name.isdigit() and int(id_or_name) <= MAX_ID:
        condition = or_(col(ApiToken.id) == int(id_or_name), condition)
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as session:
        tokens = list(session.scalars(select(ApiToken).where(
            condition, ApiToken.revoked_at.is_(None))))  # type: ignore[union-attr]
        for token in tokens:
            token.revoked_at = now
        session.commit()
    return tokens


def revoke_token(engine: Engine, token_id: int) -> ApiToken | None:
    """Revoke the live token with this id; None when there is none (unknown or already revoked)."""
    with Session(engine, expire_on_commit=False) as session:
        # one conditional UPDATE, so of two concurrent revocations exactly one succeeds
        revoked = session.execute(update(ApiToken).where(
            col(ApiToken.id) == token_id, col(ApiToken.revoked_at).is_(None))
            .values(revoked_at=datetime.now(UTC)))
        if revoked.rowcount != 1:  # type: ignore[attr-defined]
            return None
        token = session.get(ApiToken, token_id)
        session.commit()
    return token


def authenticate(engine: Engine, token: str) -> ApiToken | None:
    """The live token matching this secret, or None (unknown or revoked)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    with Session(engine, expire_on_commit=False) as session:
        digest = hash_token(token)
        record = session.scalars(select(ApiToken).where(col(ApiToken.token_hash) == digest)).first()
    if record is None or record.revoked_at is not None:
        return None
    now = datetime.now(UTC)
    if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
        _note_use(engine, record, now)
    return record


def _note_use(engine: Engine, record: ApiToken, now: datetime) -> None:
    """Refresh last_used_at in a write transaction of its own, taken up front.

    Upgrading the reading transaction instead would fail at once on SQLite when concurrent
    requests do the same; and a missed timestamp is not worth failing a request for.
    """
    try:
        with engine.connect().execution_options(**{BEGIN_MODE: "IMMEDIATE"}) as conn, conn.begin():
            conn.execute(update(ApiToken).where(col(ApiToken.id) == record.id).values(last_used_at=now))
        record.last_used_at = now
    except OperationalError as exc:
        log.warning("could not record the use of token %s: %s", record.id, type(exc.orig).__name__)
