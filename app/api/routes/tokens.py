"""API tokens, managed over HTTP by an admin (the same operations as `rua token ...`).

A token's secret is in the answer to its creation and nowhere else, ever: listings carry
its first characters (`prefix`) so a person can tell tokens apart, never the secret nor
its hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from app.api_tokens import MAX_ID, MAX_NAME_LENGTH, Scope, TokenError, create_token, list_tokens, revoke_token
from app.deps import AdminAccess, EngineDep
from app.problems import Problem, problem_responses

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])

_EXAMPLE: JsonDict = {"id": 3, "name": "mail-fetcher", "scope": "ingest", "prefix": "rua_Q2x9Zk",
                      "created_at": "2025-03-01T09:30:00Z", "last_used_at": "2025-03-02T06:00:12Z",
                      "revoked_at": None}


class TokenInfo(BaseModel):
    """A token as listed: everything but the secret."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_EXAMPLE]})

    id: int
    name: str
    scope: Scope
    prefix: str = Field(description="the token's first characters, to recognise it")
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="when it last authenticated a request (refreshed at most once a minute)")
    revoked_at: datetime | None


class NewTokenRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "mail-fetcher", "scope": "ingest"}]})

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH,
                      description="what the token is for; not all digits (those are ids)")
    scope: Scope = Field(description="ingest: upload reports; read: read everything; admin: all of it, "
                                     "and tokens and users")


class NewTokenResponse(TokenInfo):
    """The new token's metadata and, this one time only, its secret."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {**_EXAMPLE, "last_used_at": None, "token": "rua_Q2x9Zk3b7VwYpL0sT1uN8mEaR4cJdHfG6iKoXy5qA2"}]})

    token: str = Field(description="the secret, for `Authorization: Bearer <token>`; not shown again")


@router.get("", response_model=list[TokenInfo], summary="List tokens",
            responses=problem_responses(401, 403, 422))
def get_tokens(
    _: AdminAccess,
    engine: EngineDep,
    include_revoked: Annotated[bool, Query(description="list revoked tokens too")] = False,
) -> list[TokenInfo]:
    """Every live token (and revoked ones on request), oldest first."""
    return [TokenInfo.model_validate(token) for token in list_tokens(engine, include_revoked)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NewTokenResponse,
             summary="Create a token", responses=problem_responses(401, 403, 422))
def post_token(_: AdminAccess, engine: EngineDep, body: NewTokenRequest,
               response: Response) -> NewTokenResponse:
    """Make a token; its secret is in this answer only, so keep it now."""
    try:
        new = create_token(engine, body.name, body.scope)
    except TokenError as exc:
        raise Problem(422, "invalid-token-name", "Invalid token name", str(exc)) from None
    response.headers["Cache-Control"] = "no-store"  # the body holds a secret
    return NewTokenResponse(**TokenInfo.model_validate(new.record).model_dump(), token=new.token)


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a token",
               responses=problem_responses(401, 403, 404, 422))
def delete_token(_: AdminAccess, engine: EngineDep,
                 token_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> None:
    """Revoke a token: from now on it authenticates nothing. It stays listed as revoked."""
    if revoke_token(engine, token_id) is None:
        raise Problem(404, "token-not-found", "Token not found",
                      f"there is no live token with id {token_id}", token_id=token_id)
