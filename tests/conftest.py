"""Shared fixtures: real databases (SQLite and a PostgreSQL the suite starts), the corpus.

Every test that touches the store runs twice, once per database, through the `database_url`
fixture; each gets a fresh database copied from a template migrated once per session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from app.db import create_db_engine, upgrade_database
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline

if TYPE_CHECKING:
    from tests.imap_server import DovecotServer
    from tests.live_server import LiveServer

REPO = Path(__file__).resolve().parent.parent
SERVICES = REPO / "tests" / "services"
FIXTURES = REPO / "tests" / "fixtures"
CORPUS = Path(os.environ.get("RUA_CORPUS_DIR", REPO.parent / "shared" / "corpus"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_dir(name: str) -> str:
    """A 0755 directory straight under /tmp: the unprivileged server users must reach it."""
    path = tempfile.mkdtemp(prefix=f"rua-test-{name}-", dir="/tmp")
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(f"the shared report corpus is not at {CORPUS} (set RUA_CORPUS_DIR)")
    return CORPUS


# -- PostgreSQL --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL on loopback for the whole session; yields its base URL."""
    if os.environ.get("RUA_TEST_POSTGRES_URL"):
        yield os.environ["RUA_TEST_POSTGRES_URL"].rsplit("/", 1)[0]
        return
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) and os.geteuid() != 0:
        pytest.skip("PostgreSQL is not installed and cannot be installed without root "
                    "(`make test` installs it)")
    directory = service_dir("pg")
    port = free_port()
    try:
        subprocess.run(["bash", str(SERVICES / "pg-start.sh"), directory, str(port), "rua_test"],
                       check=True, capture_output=True, text=True, timeout=600)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"could not start PostgreSQL: {exc.stderr[-2000:]}")
    try:
        yield f"postgresql+psycopg://dmarc:secret@127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(SERVICES / "pg-stop.sh"), directory], check=False,
                       capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    """A database migrated once, copied for each test (CREATE DATABASE ... TEMPLATE)."""
    admin = create_db_engine(f"{postgres_server}/rua_test")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("DROP DATABASE IF EXISTS rua_template"))
        conn.execute(text("CREATE DATABASE rua_template"))
    admin.dispose()
    upgrade_database(f"{postgres_server}/rua_template")
    return "rua_template"


def _new_postgres_database(server: str, template: str) -> tuple[str, str]:
    name = f"rua_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(f"{server}/rua_test")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    return name, f"{server}/{name}"


def drop_postgres_database(server: str, name: str, required: bool = False) -> None:
    """Drop a test database, retrying: an autovacuum worker (the superuser's) may still be
    connected, and the test role may not end it, but it soon leaves. Unless `required`,
    giving up is fine: the whole server is thrown away after the session."""
    admin = create_db_engine(f"{server}/rua_test")
    try:
        for attempt in range(20):
            try:
                with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                return
            except DBAPIError:
                if required and attempt == 19:
                    raise
                time.sleep(0.3)
    finally:
        admin.dispose()


# -- SQLite ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    engine = create_db_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


# -- per test ----------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "rua.db"
        shutil.copy(template, target)
        yield f"sqlite:///{target}"
        return
    server: str = request.getfixturevalue("postgres_server")
    name, url = _new_postgres_database(server, request.getfixturevalue("postgres_template"))
    try:
        yield url
    finally:
        drop_postgres_database(server, name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def limits() -> UnpackLimits:
    return UnpackLimits()


@pytest.fixture
def pipeline(engine: Engine, data_dir: Path, limits: UnpackLimits) -> IngestPipeline:
    return IngestPipeline(engine, data_dir, limits)


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """`rua serve` (real uvicorn) on loopback over this test's database."""
    from tests.live_server import run_server

    with run_server(database_url, tmp_path / "server") as server:
        yield server


# -- Dovecot (IMAP) ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A real Dovecot on loopback for the whole session (one per xdist worker): plain IMAP and
    STARTTLS on `.port`, implicit TLS on `.tls_port` (trust `.ca_file`). Any user logs in with
    password "secret"; take `dovecot.new_user()` for an empty mailbox of the test's own.
    A test that calls `kill()` or `stop()` must `restart()` it before it ends."""
    from tests.imap_server import DovecotError, DovecotServer

    if not Path("/usr/lib/dovecot/imap").exists() and os.geteuid() != 0:
        pytest.skip("Dovecot (dovecot-imapd) is not installed and cannot be installed without root "
                    "(`make test` installs it)")
    def two_ports() -> tuple[int, int]:
        while (ports := (free_port(), free_port()))[0] == ports[1]:
            pass
        return ports

    directory = service_dir("dovecot")
    server = DovecotServer(directory, *two_ports())
    try:
        for attempt in range(3):
            try:
                server.start()
                break
            except DovecotError as exc:
                # another worker may have taken a port between free_port() and bind()
                if "Address already in use" not in str(exc) or attempt == 2:
                    pytest.fail(f"could not start Dovecot: {exc}")
                server.port, server.tls_port = two_ports()
        yield server
    finally:
        # the mail is thrown away: SIGKILL is instant, a clean stop takes Dovecot a second
        try:
            server.kill()
        except (DovecotError, OSError):
            subprocess.run(["bash", str(SERVICES / "dovecot-stop.sh"), directory], check=False,
                           capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


# -- NSD (authoritative DNS) -------------------------------------------------------------------

if TYPE_CHECKING:
    from tests.dns_server import NsdServer


@pytest.fixture(scope="session")
def nsd() -> Iterator[NsdServer]:
    """A real authoritative NSD on loopback for the whole session (one per xdist worker); give
    `nsd.nameserver` ("127.0.0.1:PORT") to the resolver under test. The zones are shared by the
    worker's tests: take `nsd.new_zone_name()`, `set_zone()` it, then `reload()` (it returns once
    the change is served). A test that calls `kill()` or `stop()` must `restart()` it before it ends."""
    from tests.dns_server import NsdError, NsdServer, free_dns_port, nsd_installed

    if not nsd_installed() and os.geteuid() != 0:
        pytest.skip("NSD (nsd) is not installed and cannot be installed without root "
                    "(`make test` installs it)")
    directory = service_dir("nsd")
    server = NsdServer(directory, free_dns_port())
    try:
        for attempt in range(3):
            try:
                server.start()
                break
            except NsdError as exc:
                # another worker may have taken the port between free_dns_port() and bind()
                if "Address already in use" not in str(exc) or attempt == 2:
                    pytest.fail(f"could not start NSD: {exc}")
                server.port = free_dns_port()
        yield server
    finally:
        # the zones are thrown away: no need for a clean stop
        try:
            server.kill()
        except (NsdError, OSError):
            subprocess.run(["bash", str(SERVICES / "nsd-stop.sh"), directory], check=False,
                           capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


# -- the dashboard in a real browser (fixtures defined beside their helpers) --------------------
from tests.dashboard_site import browser, dashboard_site, page  # noqa: E402, F401
