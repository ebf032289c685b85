"""Dashboard users, managed over HTTP by an admin (the same operations as `rua user ...`).

Passwords go in and never come out: listings carry no hash, and the password field is
write-only in the schema and a `SecretStr` in the process, so it cannot reach a log by repr.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.config import JsonDict

from app.dashboard_users import (
    MAX_PASSWORD_LENGTH,
    MAX_USERNAME_LENGTH,
    MIN_PASSWORD_LENGTH,
    UserError,
    UserExists,
    create_user,
    delete_user,
    list_users,
)
from app.deps import AdminAccess, EngineDep
from app.problems import Problem, problem_responses

router = APIRouter(prefix="/api/v1/users", tags=["users"])

_EXAMPLE: JsonDict = {"id": 1, "username": "alice", "created_at": "2025-03-01T09:30:00Z",
                      "password_changed_at": "2025-03-01T09:30:00Z", "disabled": False}


class UserInfo(BaseModel):
    """A dashboard user as listed (never the password hash)."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_EXAMPLE]})

    id: int
    username: str
    created_at: datetime
    password_changed_at: datetime
    disabled: bool


class NewUserRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"username": "alice", "password": "correct horse battery staple"}]})

    username: str = Field(min_length=1, max_length=MAX_USERNAME_LENGTH, pattern=r"^\S+$",
                          description="the name to sign in with, without spaces")
    password: SecretStr = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)


@router.get("", response_model=list[UserInfo], summary="List users", responses=problem_responses(401, 403))
def get_users(_: AdminAccess, engine: EngineDep) -> list[UserInfo]:
    """Every dashboard user, oldest first."""
    return [UserInfo.model_validate(user) for user in list_users(engine)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserInfo, summary="Create a user",
             responses=problem_responses(401, 403, 409, 422))
def post_user(_: AdminAccess, engine: EngineDep, body: NewUserRequest) -> UserInfo:
    """Add a dashboard user (409 when the name is taken)."""
    try:
        user = create_user(engine, body.username, body.password.get_secret_value())
    except UserExists as exc:
        raise Problem(409, "user-exists", "User exists", str(exc)) from None
    except UserError as exc:
        raise Problem(422, "invalid-user", "Invalid user", str(exc)) from None
    return UserInfo.model_validate(user)


@router.delete("/{username}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a user",
               responses=problem_responses(401, 403, 404, 422))
def delete_dashboard_user(_: AdminAccess, engine: EngineDep, username: str) -> None:
    """Remove a dashboard user; they can no longer sign in."""
    if not delete_user(engine, username):
        raise Problem(404, "user-not-found", "User not found", f"there is no user named {username!r}",
                      username=username)
