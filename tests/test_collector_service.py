"""The collector as users run it: `rua poll` from cron, `rua serve` with the collector beside the
web app, its state at /api/v1/collector and in /metrics; all against a real Dovecot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.conftest import count_rows
from tests.imap_server import DovecotServer
from tests.live_server import run_server
from tests.preloaded_server import run_rua_text
from tests.test_imap_collector import not_a_report, report_email, wait_for

RUA = Path(sys.executable).parent / "rua"


def imap_env(dovecot: DovecotServer, user: str, password: str | None = None) -> dict[str, str]:
    return {"RUA_IMAP_HOST": dovecot.host, "RUA_IMAP_PORT": str(dovecot.port), "RUA_IMAP_TLS": "none",
            "RUA_IMAP_USER": user, "RUA_IMAP_PASSWORD": password or dovecot.password}


def rua(args: list[str], database_url: str, tmp_path: Path,
        env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RUA_")}
    environment.update(RUA_DATABASE_URL=database_url, RUA_DATA_DIR=str(tmp_path / "data"), **env)
    return run_rua_text(args, environment, timeout=120)


def test_rua_poll_makes_one_pass_and_says_what_it_did(dovecot: DovecotServer, database_url: str,
                                                      tmp_path: Path) -> None:
    user = dovecot.new_user()
    for number in range(3):
        dovecot.append(user, "INBOX", report_email(f"p{number}"))
    dovecot.append(user, "INBOX", not_a_report())
    done = rua(["poll", "--json"], database_url, tmp_path, imap_env(dovecot, user))
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert json.loads(line) | {"mailbox": None} == {
        "mailbox": None, "ok": True, "archived": 3, "invalid": 1, "deferred": 0, "remaining": 0,
        "error": None, "reason": None}
    assert sorted(dovecot.folders(user)) == ["Archive", "INBOX", "Invalid"]  # created as needed
    assert len(dovecot.folder_uids(user, "Archive")) == 3

    refused = rua(["poll"], database_url, tmp_path, imap_env(dovecot, user, password="wrong"))
    assert refused.returncode == 1
    assert "refused the login" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_poll_without_a_mailbox_and_with_a_bad_one(database_url: str, tmp_path: Path) -> None:
    none = rua(["poll"], database_url, tmp_path, {})
    assert none.returncode == 2 and "no mailbox is configured" in none.stderr
    plain = rua(["poll"], database_url, tmp_path, {"RUA_IMAP_HOST": "imap.example.com",
                                                     "RUA_IMAP_TLS": "none", "RUA_IMAP_USER": "u",
                                                     "RUA_IMAP_PASSWORD": "p"})
    assert plain.returncode == 2 and "only allowed for a loopback host" in plain.stderr


def test_mailboxes_from_a_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "rua.toml"
    (tmp_path / "pw").write_text("s3cret\n")
    config.write_text(f"""
[[mailboxes]]
name = "main"
host = "imap.example.com"
user = "dmarc@example.com"
password_file = "{tmp_path / 'pw'}"

[[mailboxes]]
host = "mail.example.org"
port = 1143
tls = "starttls"
user = "reports"
password = "x"
folder = "DMARC"
archive = "DMARC/Done"
invalid = "DMARC/Invalid"
batch_size = 50
""")
    monkeypatch.setenv("RUA_CONFIG", str(config))
    first, second = Settings().all_mailboxes()
    assert (first.label, first.effective_port, first.tls, first.secret()) == ("main", 993, "ssl", "s3cret")
    assert (second.label, second.effective_port, second.archive) == ("reports@mail.example.org/DMARC", 1143,
                                                                      "DMARC/Done")


def test_serve_collects_in_the_background_and_shows_its_state(dovecot: DovecotServer, database_url: str,
                                                              tmp_path: Path) -> None:
    user = dovecot.new_user()
    dovecot.append(user, "INBOX", report_email("served"))
    with run_server(database_url, tmp_path, env=imap_env(dovecot, user)) as server:
        wait_for(lambda: count_rows(server.engine, "aggregate_report") == 1, 10, "the waiting report",
                 server.log_text)
        dovecot.append(user, "INBOX", report_email("served-later"))
        wait_for(lambda: count_rows(server.engine, "aggregate_report") == 2, 5, "the new report (IDLE)",
                 server.log_text)
        client = server.client("read")
        wait_for(lambda: client.get("/api/v1/collector").json()["mailboxes"][0]["ingested"] == 2, 5,
                 "the state to catch up")
        [state] = client.get("/api/v1/collector").json()["mailboxes"]
        assert state["configured"] and state["collected_here"] and state["state"] == "idle"
        assert state["backlog"] == 0 and state["last_error"] is None and state["last_success_at"]
        metrics = httpx.get(f"{server.url}/metrics").text
        assert f'rua_collector_messages_total{{mailbox="{state["name"]}",outcome="archived"}} 2.0' in metrics
        assert f'rua_collector_backlog{{mailbox="{state["name"]}"}} 0.0' in metrics
        assert 'rua_reports_ingested_total{kind="aggregate",status="new"} 2.0' in metrics
        assert client.get("/api/v1/collector", headers={"Authorization": ""}).status_code == 401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_wrong_password_is_reported_while_the_app_keeps_serving(dovecot: DovecotServer, database_url: str,
                                                                  tmp_path: Path) -> None:
    user = dovecot.new_user()
    with run_server(database_url, tmp_path, env=imap_env(dovecot, user, password="wrong")) as server:
        client = server.client("read")

        def failing() -> bool:
            mailboxes = client.get("/api/v1/collector").json()["mailboxes"]
            return bool(mailboxes) and mailboxes[0]["last_error_reason"] == "login_failed"

        wait_for(failing, 10, "the login failure to be reported")
        [state] = client.get("/api/v1/collector").json()["mailboxes"]
        assert state["state"] in ("backoff", "connecting") and "refused the login" in state["last_error"]
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert client.get("/api/v1/reports").status_code == 200
        time.sleep(0.5)
        assert "Traceback" not in server.log_text()
        metrics = httpx.get(f"{server.url}/metrics").text
        assert f'rua_collector_failing{{mailbox="{state["name"]}",reason="login_failed"}} 1.0' in metrics
