"""`rua token ...` and `rua user ...`: API tokens for scripts, users for the dashboard.

Standard output carries only what a script would capture (a new token, a table, JSON);
everything meant for the person at the keyboard goes to standard error.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, NoReturn

import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.api_tokens import Scope, TokenError, check_token_name, create_token, list_tokens, revoke_tokens
from app.dashboard_users import UserError, UserExists, check_username, create_user, delete_user, list_users

token_cli = typer.Typer(help="API tokens (`Authorization: Bearer ...`) for scripts and fetchers.",
                        no_args_is_help=True)
user_cli = typer.Typer(help="Users who sign in to the dashboard.", no_args_is_help=True)

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
SCOPES = ", ".join(scope.value for scope in Scope)

# app.cli imports this module to register the sub-commands, so its helpers are imported
# where they are used: importing them here would make the two modules' import order matter.


def _fail(message: str, code: int = 2) -> NoReturn:
    from app.cli import _fail as fail

    fail(message, code)


@contextmanager
def _database() -> Iterator[Engine]:
    """The migrated database, with the same messages and exit codes as every other command:
    2 for bad settings or an unmigrated schema, 3 when the database cannot be used."""
    from app.cli import _database_trouble, _ready_engine, _settings

    settings = _settings()
    engine = _ready_engine(settings)
    try:
        yield engine
    except SQLAlchemyError as exc:
        _database_trouble(settings, exc)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _print_json(items: Sequence[BaseModel]) -> None:
    """Items are the API's own response models, so the CLI's JSON and the API's never drift
    apart; callers import them late because most commands never need the slow web stack."""
    print(json.dumps([item.model_dump(mode="json") for item in items], indent=2))


def _print_table(table: Table) -> None:
    """On a terminal, fitted to its width; into a pipe or file, at full width, unwrapped, so
    nothing is folded or cut off for a reader such as grep."""
    (out if out.is_terminal else Console(width=100_000)).print(table)


# -- tokens ------------------------------------------------------------------------------------

@token_cli.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="What the token is for (e.g. the host using it).")],
    scope: Annotated[str, typer.Option("--scope", help=f"One of: {SCOPES}.")],
) -> None:
    """Make a token and print it, alone, on standard output; it is not shown again.

    Capture it in a script: TOKEN=$(rua token create --name ci --scope ingest)
    """
    try:
        chosen = Scope(scope.strip().lower())
    except ValueError:
        _fail(f"invalid scope {scope!r}: choose one of {SCOPES}")
    try:
        name = check_token_name(name)
    except TokenError as exc:
        _fail(str(exc))
    with _database() as engine:
        new = create_token(engine, name, chosen)
    print(new.token, flush=True)
    err.print(f"created token {new.record.id} {new.record.name!r} with scope {chosen.value}; "
              "keep it now: it is not shown again", highlight=False)


@token_cli.command("list")
def token_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
) -> None:
    """List tokens (never their secrets): id, name, scope, prefix, when made, last used, revoked."""
    with _database() as engine:
        tokens = list_tokens(engine, include_revoked)
    if as_json:
        from app.api.routes.tokens import TokenInfo

        _print_json([TokenInfo.model_validate(token) for token in tokens])
        return
    if not tokens:
        err.print("no tokens" if include_revoked else "no live tokens (--all lists revoked ones too)")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for header in ("id", "name", "scope", "prefix"):
        table.add_column(header, no_wrap=header != "name", min_width=6 if header == "name" else None)
    for header in ("created (UTC)", "last used", "revoked"):
        table.add_column(header)
    for token in tokens:
        table.add_row(str(token.id), token.name, token.scope, token.prefix, _when(token.created_at),
                      _when(token.last_used_at) or "never", _when(token.revoked_at))
    _print_table(table)


@token_cli.command("revoke")
def token_revoke(
    id_or_name: Annotated[str, typer.Argument(
        metavar="ID_OR_NAME", help="A token id, or a name: every live token of that name.")],
) -> None:
    """Revoke tokens so they authenticate nothing more; exits 1 when none matched."""
    with _database() as engine:
        revoked = revoke_tokens(engine, id_or_name.strip())
    if not revoked:
        _fail(f"no live token has the id or name {id_or_name!r}", 1)
    for token in revoked:
        err.print(f"revoked token {token.id} {token.name!r} ({token.scope}, {token.prefix}…)",
                  highlight=False)


# -- users -------------------------------------------------------------------------------------

def _read_password() -> str:
    """From a pipe, the first line; on a terminal, typed twice without echo."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            _fail("no password on standard input (give it as the first line)")
        return line.removesuffix("\n").removesuffix("\r")
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Password again: ")
    except (EOFError, KeyboardInterrupt):
        err.print()
        _fail("no password given", 1)
    if first != second:
        _fail("the two passwords differ; nothing was changed", 1)
    return first


@user_cli.command("create")
def user_create(
    username: Annotated[str, typer.Argument(metavar="NAME", help="The name to sign in with.")],
) -> None:
    """Add a dashboard user. The password is read from standard input when that is a pipe
    (its first line), else asked for twice without echo."""
    try:
        username = check_username(username)
    except UserError as exc:
        _fail(str(exc))
    with _database() as engine:
        # the database is checked first, so nobody types a password for nothing
        password = _read_password()
        try:
            user = create_user(engine, username, password)
        except UserExists as exc:
            _fail(str(exc), 1)
        except UserError as exc:
            _fail(str(exc))
    err.print(f"created user {user.username!r}", highlight=False)


@user_cli.command("list")
def user_list(as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False) -> None:
    """List dashboard users."""
    with _database() as engine:
        users = list_users(engine)
    if as_json:
        from app.api.routes.users import UserInfo

        _print_json([UserInfo.model_validate(user) for user in users])
        return
    if not users:
        err.print("no users")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("username", min_width=8)
    for header in ("created (UTC)", "password changed", "disabled"):
        table.add_column(header)
    for user in users:
        table.add_row(str(user.id), user.username, _when(user.created_at), _when(user.password_changed_at),
                      "yes" if user.disabled else "")
    _print_table(table)


@user_cli.command("delete")
def user_delete(
    username: Annotated[str, typer.Argument(metavar="NAME", help="The user to remove.")],
) -> None:
    """Remove a dashboard user; exits 1 when there is no such user."""
    with _database() as engine:
        deleted = delete_user(engine, username)
    if not deleted:
        _fail(f"there is no user named {username!r}", 1)
    err.print(f"deleted user {username!r}", highlight=False)
