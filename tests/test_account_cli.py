"""`rua token ...` and `rua user ...`, run as the real command, on SQLite and PostgreSQL.

What matters to the people using them: a script can capture a new token with `$(...)`, the
database holds only hashes, revocation takes effect at once, and a password can be piped in
or typed (twice, unseen) on a terminal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app.api_tokens import Scope, authenticate, create_token
from app.dashboard_users import create_user, list_users, verify_login
from tests.conftest import count_rows
from tests.live_server import RUA
from tests.preloaded_server import run_rua_text

TOKEN_FIELDS = {"id", "name", "scope", "prefix", "created_at", "last_used_at", "revoked_at"}
USER_FIELDS = {"id", "username", "created_at", "password_changed_at", "disabled"}


def environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RUA_")}
    env.update(RUA_DATABASE_URL=database_url, RUA_DATA_DIR=str(tmp_path / "data"))
    return env


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return environment(database_url, tmp_path)


def rua(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_rua_text(list(args), env, stdin=stdin, timeout=120)


def stored_values(engine: Engine, table: str) -> list[str]:
    """Every value of every row of `table`, as text."""
    with engine.connect() as conn:
        return [str(value) for row in conn.execute(text(f"SELECT * FROM {table}")) for value in row]


# -- tokens ------------------------------------------------------------------------------------

def test_token_create_prints_the_token_alone_and_keeps_only_its_hash(env: dict[str, str], engine: Engine,
                                                                     database_url: str) -> None:
    result = rua(env, "token", "create", "--name", "ci", "--scope", "ingest")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and result.stdout == lines[0] + "\n", f"stdout is not one line: {result.stdout!r}"
    token = lines[0]
    assert token.startswith("rua_") and len(token) >= 40 and token.strip() == token
    assert "not shown again" in result.stderr and token not in result.stderr

    record = authenticate(engine, token)
    assert record is not None
    assert (record.name, record.scope) == ("ci", "ingest")
    assert Scope(record.scope).allows(Scope.INGEST) and not Scope(record.scope).allows(Scope.READ)

    values = stored_values(engine, "api_token")
    assert hashlib.sha256(token.encode()).hexdigest() in values
    assert not any(token in value for value in values), "the token itself is stored"
    assert token.startswith(record.prefix) and len(record.prefix) < len(token) // 3
    if database_url.startswith("sqlite"):
        files = Path(database_url.removeprefix("sqlite:///")).parent.glob("rua.db*")
        assert not any(token.encode() in path.read_bytes() for path in files)

    # the way the documentation says to capture it
    captured = subprocess.run(
        ["bash", "-c", f'TOKEN=$("{RUA}" token create --name ci --scope read) && printf %s "$TOKEN"'],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert captured.returncode == 0, captured.stderr
    second = authenticate(engine, captured.stdout)
    assert second is not None and second.scope == "read" and captured.stdout != token


def test_token_list_and_revoke_by_id_and_by_name(env: dict[str, str], engine: Engine) -> None:
    fetchers = [create_token(engine, "fetcher", Scope.INGEST) for _ in range(2)]
    dash = create_token(engine, "dashboard", Scope.READ)
    admin = create_token(engine, "ops", Scope.ADMIN)
    assert authenticate(engine, dash.token) is not None  # so it has a last-used time
    secrets = [new.token for new in (*fetchers, dash, admin)]

    table = rua(env, "token", "list")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines() if not line.startswith("─")]
    assert rows[0][:4] == ["id", "name", "scope", "prefix"]
    for new in (*fetchers, dash, admin):
        assert [str(new.record.id), new.record.name, new.record.scope, new.record.prefix] in \
            [row[:4] for row in rows], table.stdout
    dash_row = next(row for row in rows if row[1] == "dashboard")
    assert "never" not in dash_row, "the dashboard token was used"
    assert not any(secret in table.stdout for secret in secrets)

    listed = json.loads(rua(env, "token", "list", "--json").stdout)
    assert [item["id"] for item in listed] == [new.record.id for new in (*fetchers, dash, admin)]
    assert all(set(item) == TOKEN_FIELDS for item in listed)
    assert [(item["name"], item["scope"], item["prefix"], item["revoked_at"]) for item in listed] == [
        (new.record.name, new.record.scope, new.record.prefix, None) for new in (*fetchers, dash, admin)]
    assert listed[2]["last_used_at"] is not None and listed[0]["last_used_at"] is None

    by_id = rua(env, "token", "revoke", str(dash.record.id))
    assert by_id.returncode == 0, by_id.stderr
    assert "dashboard" in by_id.stderr and by_id.stdout == ""
    assert authenticate(engine, dash.token) is None
    assert all(authenticate(engine, new.token) is not None for new in fetchers)

    by_name = rua(env, "token", "revoke", "fetcher")
    assert by_name.returncode == 0, by_name.stderr
    assert all(f"revoked token {new.record.id} " in by_name.stderr for new in fetchers)
    assert all(authenticate(engine, new.token) is None for new in fetchers)
    assert authenticate(engine, admin.token) is not None

    for unmatched in ("fetcher", str(dash.record.id), "99999999999999999999"):
        again = rua(env, "token", "revoke", unmatched)
        assert again.returncode == 1 and "no live token" in again.stderr, (unmatched, again.stderr)

    live = json.loads(rua(env, "token", "list", "--json").stdout)
    assert [item["name"] for item in live] == ["ops"]
    everything = json.loads(rua(env, "token", "list", "--json", "--all").stdout)
    assert len(everything) == 4
    assert {item["name"]: item["revoked_at"] is not None for item in everything} == \
        {"fetcher": True, "dashboard": True, "ops": False}
    table_all = rua(env, "token", "list", "--all")
    assert sum(1 for line in table_all.stdout.splitlines() if "fetcher" in line) == 2


def test_token_create_refuses_a_bad_scope_or_name(env: dict[str, str], engine: Engine) -> None:
    wrong = rua(env, "token", "create", "--name", "ci", "--scope", "superuser")
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert "superuser" in wrong.stderr and "ingest, read, admin" in wrong.stderr
    digits = rua(env, "token", "create", "--name", "42", "--scope", "read")
    assert digits.returncode == 2 and digits.stdout == "" and "digits" in digits.stderr
    missing = rua(env, "token", "create", "--name", "ci")
    assert missing.returncode == 2 and missing.stdout == "" and "--scope" in missing.stderr
    assert count_rows(engine, "api_token") == 0
    assert rua(env, "token", "list", "--json").stdout.strip() == "[]"


# -- users -------------------------------------------------------------------------------------

def test_user_create_reads_the_password_from_a_pipe(env: dict[str, str], engine: Engine) -> None:
    created = rua(env, "user", "create", "alice", stdin="correct horse battery\nsecond line\n")
    assert created.returncode == 0, created.stderr
    assert created.stdout == "" and "alice" in created.stderr
    assert verify_login(engine, "alice", "correct horse battery") is not None
    for wrong in ("correct horse battery\n", "second line", "correct horse batter", ""):
        assert verify_login(engine, "alice", wrong) is None, wrong
    assert verify_login(engine, "bob", "correct horse battery") is None
    [stored] = [value for value in stored_values(engine, "dashboard_user") if value.startswith("$argon2")]
    assert stored.startswith("$argon2id$") and "correct horse" not in stored

    # a line ended the Windows way loses its \r\n; the password is otherwise kept verbatim
    windows = rua(env, "user", "create", "bob", stdin=" spaced out \r\n")
    assert windows.returncode == 0, windows.stderr
    assert verify_login(engine, "bob", " spaced out ") is not None
    assert verify_login(engine, "bob", "spaced out") is None

    duplicate = rua(env, "user", "create", "alice", stdin="another password\n")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    assert verify_login(engine, "alice", "correct horse battery") is not None
    assert verify_login(engine, "alice", "another password") is None

    short = rua(env, "user", "create", "carol", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    empty = rua(env, "user", "create", "carol", stdin="")
    assert empty.returncode == 2 and "no password" in empty.stderr
    spaced = rua(env, "user", "create", "carol smith", stdin="long enough password\n")
    assert spaced.returncode == 2 and "without spaces" in spaced.stderr
    assert [user.username for user in list_users(engine)] == ["alice", "bob"]


def run_on_terminal(env: dict[str, str], args: list[str], answers: list[str]) -> tuple[int, str, bytes]:
    """Run `rua` with a terminal as standard input (in a session of its own, so getpass
    cannot reach the terminal pytest runs in and prompts on stderr), typing each answer once
    its prompt is shown (getpass discards what was typed earlier). Returns the exit status,
    stderr, and what the terminal displayed (its echo)."""
    master, slave = os.openpty()
    process = subprocess.Popen([str(RUA), *args], env=env, stdin=slave, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    os.close(slave)
    assert process.stderr is not None
    errors = process.stderr.fileno()
    stderr, shown, answered = b"", b"", 0
    deadline = time.monotonic() + 60
    try:
        while True:
            assert time.monotonic() < deadline, f"rua did not finish; stderr so far: {stderr!r}"
            ready, _, _ = select.select([errors, master], [], [], 0.2)
            if master in ready:
                with contextlib.suppress(OSError):  # EIO once the child has let go of the terminal
                    shown += os.read(master, 4096)
            if errors in ready:
                chunk = os.read(errors, 4096)
                if not chunk:
                    break
                stderr += chunk
                if answered < len(answers) and stderr.count(b"Password") > answered \
                        and stderr.endswith(b": "):
                    os.write(master, answers[answered].encode() + b"\n")
                    answered += 1
        process.wait(timeout=30)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    return process.returncode, stderr.decode(errors="replace"), shown


def test_user_create_on_a_terminal_asks_twice_without_echo(env: dict[str, str], engine: Engine) -> None:
    status, stderr, shown = run_on_terminal(env, ["user", "create", "dora"],
                                            ["typed secretly 1", "typed secretly 1"])
    assert status == 0, stderr
    assert stderr.count("Password") == 2
    assert b"typed secretly" not in shown, "the password was echoed"
    assert verify_login(engine, "dora", "typed secretly 1") is not None

    status, stderr, shown = run_on_terminal(env, ["user", "create", "eve"],
                                            ["typed secretly 1", "typed secretly 2"])
    assert status == 1 and "differ" in stderr
    assert b"typed secretly" not in shown
    assert [user.username for user in list_users(engine)] == ["dora"]


def test_user_list_and_delete(env: dict[str, str], engine: Engine) -> None:
    assert rua(env, "user", "list", "--json").stdout.strip() == "[]"
    for name in ("alice", "bob"):
        create_user(engine, name, f"{name} password")

    table = rua(env, "user", "list")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines() if not line.startswith("─")]
    assert rows[0][:2] == ["id", "username"]
    assert [row[1] for row in rows[1:]] == ["alice", "bob"]
    assert "$argon2" not in table.stdout

    listed = json.loads(rua(env, "user", "list", "--json").stdout)
    assert [item["username"] for item in listed] == ["alice", "bob"]
    assert all(set(item) == USER_FIELDS and item["disabled"] is False for item in listed)

    deleted = rua(env, "user", "delete", "alice")
    assert deleted.returncode == 0 and "alice" in deleted.stderr
    assert verify_login(engine, "alice", "alice password") is None
    assert verify_login(engine, "bob", "bob password") is not None
    unknown = rua(env, "user", "delete", "alice")
    assert unknown.returncode == 1 and "no user named 'alice'" in unknown.stderr
    assert [item["username"] for item in json.loads(rua(env, "user", "list", "--json").stdout)] == ["bob"]


# -- the database ------------------------------------------------------------------------------

def test_an_unusable_database_gets_the_usual_exit_codes(tmp_path: Path) -> None:
    """2 with the `rua db upgrade` hint when the schema is missing, 3 when the database cannot
    be reached; nothing is asked or printed on stdout first."""
    unmigrated = environment(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path)
    unreachable = environment("postgresql+psycopg://rua:secret@127.0.0.1:1/rua", tmp_path)
    token_create = ["token", "create", "--name", "ci", "--scope", "read"]
    user_create = ["user", "create", "alice"]
    cases: list[tuple[dict[str, str], int, list[list[str]]]] = [
        (unmigrated, 2, [token_create, user_create, ["token", "revoke", "ci"]]),
        (unreachable, 3, [["token", "list"], user_create, ["user", "delete", "alice"]])]
    for env, code, commands in cases:
        for args in commands:
            stdin = "long enough password\n" if args == user_create else None
            result = rua(env, *args, stdin=stdin)
            assert (result.returncode, result.stdout) == (code, ""), (args, result.stderr)
            assert "Traceback" not in result.stderr
            if code == 2:
                assert "rua db upgrade" in result.stderr
            else:
                assert "cannot use the database" in result.stderr and "secret" not in result.stderr

