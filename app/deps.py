"""Every dependency the routes use, defined once as an `Annotated` alias."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from app.api_tokens import Scope, authenticate
from app.dashboard_sessions import SignedIn, find_session
from app.models import ApiToken
from app.problems import Problem
from app.record_filter import RecordFilter, record_filter
from app.settings import Settings
from ingest.pipeline import IngestPipeline

bearer = HTTPBearer(auto_error=False, description="An API token made with `rua token create`.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_db_engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def get_pipeline(request: Request) -> IngestPipeline:
    return request.app.state.pipeline  # type: ignore[no-any-return]


def get_session(engine: Annotated[Engine, Depends(get_db_engine)]) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
EngineDep = Annotated[Engine, Depends(get_db_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
PipelineDep = Annotated[IngestPipeline, Depends(get_pipeline)]


def require(scope: Scope) -> Callable[..., ApiToken]:
    """A dependency admitting only requests bearing a live token whose scope allows `scope`.

    401 when there is no usable token (with a `WWW-Authenticate` challenge), 403 when the
    token is good but for another purpose.
    """

    def check(request: Request, engine: EngineDep,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> ApiToken:
        if credentials is None:
            if scope is Scope.READ and request.method in ("GET", "HEAD"):
                # the dashboard's "JSON" and "CSV" links: a signed-in person may read what the
                # pages show; reads only, so a forged cross-site request changes nothing
                user = signed_in_user(request, engine)
                if user is not None:
                    return ApiToken(name=f"dashboard:{user.username}", scope=Scope.READ.value, token_hash="",
                                    prefix="", created_at=datetime.now(UTC))
            raise Problem(401, "unauthorized", "Unauthorized",
                          "send an API token as 'Authorization: Bearer <token>'", headers=_CHALLENGE)
        token = authenticate(engine, credentials.credentials)
        if token is None:
            raise Problem(401, "invalid-token", "Unauthorized",
                          "the API token is unknown or has been revoked", headers=_CHALLENGE)
        if not Scope(token.scope).allows(scope):
            raise Problem(403, "insufficient-scope", "Forbidden",
                          f"this token's scope is {token.scope!r}; this needs {scope.value!r}",
                          required_scope=scope.value)
        request.state.token_id = token.id
        return token

    return check


IngestAccess = Annotated[ApiToken, Depends(require(Scope.INGEST))]
ReadAccess = Annotated[ApiToken, Depends(require(Scope.READ))]
AdminAccess = Annotated[ApiToken, Depends(require(Scope.ADMIN))]


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int | None
    """None: everything (CSV exports); JSON lists fall back to DEFAULT_LIMIT"""
    offset: int

    def json_limit(self) -> int:
        return self.limit or DEFAULT_LIMIT


DEFAULT_LIMIT = 100


def page_params(
    limit: Annotated[int | None, Query(ge=1, le=1000, description=(
        f"Items per page (default {DEFAULT_LIMIT}). CSV exports hold every match unless a limit is given."))]
    = None,
    offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
) -> PageParams:
    return PageParams(limit, offset)


FormatParam = Annotated[Literal["json", "csv"] | None, Query(
    alias="format", description="csv for a CSV export (as does `Accept: text/csv`).")]
PageDep = Annotated[PageParams, Depends(page_params)]
RecordFilterDep = Annotated[RecordFilter, Depends(record_filter)]


# -- the dashboard -----------------------------------------------------------------------------

SESSION_COOKIE = "rua_session"
_UNSET = object()


class LoginRequired(Exception):
    """Raised by a page for an anonymous visitor; answered with a redirect to the login page
    that comes back to `next_url`."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def signed_in_user(request: Request, engine: Engine) -> SignedIn | None:
    """The session of the request's cookie, looked up once per request."""
    found = getattr(request.state, "signed_in", _UNSET)
    if found is _UNSET:
        found = find_session(engine, request.cookies.get(SESSION_COOKIE))
        request.state.signed_in = found
    return found  # type: ignore[return-value]


def require_signed_in(request: Request, engine: EngineDep) -> SignedIn:
    user = signed_in_user(request, engine)
    if user is None:
        query = request.url.query
        raise LoginRequired(request.url.path + (f"?{query}" if query else ""))
    return user


SignedInDep = Annotated[SignedIn, Depends(require_signed_in)]


async def require_csrf(request: Request, user: SignedInDep) -> SignedIn:
    """A form post from the dashboard itself: its `csrf_token` field matches the session's."""
    form = await request.form()
    token = form.get("csrf_token")
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), user.csrf_token.encode()):
        raise Problem(403, "csrf-failed", "Forbidden",
                      "this form is out of date or did not come from this dashboard; reload the page and "
                      "send it again")
    return user


CsrfCheckedDep = Annotated[SignedIn, Depends(require_csrf)]
