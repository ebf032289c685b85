"""`rua serve` as deployed: a real uvicorn process on loopback, driven over HTTP with httpx.

The server runs in its own process against the test's database (SQLite or PostgreSQL), so
tests see what a script, a browser or a load balancer sees, including reports ingested
while the server is already up. The process is forked from one that has the web app imported
already (tests.preloaded_server), which saves the suite some ten minutes of CPU; with
`installed=True` it is the installed `rua` script itself, started from scratch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from app.api_tokens import Scope, create_token
from app.db import create_db_engine
from tests.conftest import free_port
from tests.preloaded_server import RuaProcess

RUA = Path(sys.executable).parent / "rua"


@dataclass
class LiveServer:
    url: str
    database_url: str
    data_dir: Path
    log_path: Path
    engine: Engine
    tokens: dict[str, str] = field(default_factory=dict)
    clients: list[httpx.Client] = field(default_factory=list)

    def token(self, scope: Scope | str = Scope.ADMIN, name: str | None = None) -> str:
        """A new live token of this scope (cached per scope when unnamed)."""
        scope = Scope(scope)
        if name is None and scope in self.tokens:
            return self.tokens[scope]
        token = create_token(self.engine, name or f"test-{scope}", scope).token
        if name is None:
            self.tokens[scope] = token
        return token

    def client(self, scope: Scope | str | None = Scope.ADMIN, timeout: float = 30) -> httpx.Client:
        """An httpx client for this server, sending a token of `scope` (None: no token)."""
        headers = {} if scope is None else {"Authorization": f"Bearer {self.token(scope)}"}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.clients.append(client)
        return client

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_server(database_url: str, workdir: Path, env: dict[str, str] | None = None,
               installed: bool = False) -> Iterator[LiveServer]:
    """Start `rua serve` on a free loopback port; stopped (and reaped) on exit."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "serve-data"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("RUA_")}
    environment.update(RUA_DATABASE_URL=database_url, RUA_DATA_DIR=str(data_dir), RUA_DNS_IN_SERVE="false")
    environment.update(env or {})
    log_path = workdir / f"serve-{port}.log"
    argv = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    process: subprocess.Popen[bytes] | RuaProcess
    if installed:
        with open(log_path, "ab") as log:  # the child holds its own copy of the descriptor
            process = subprocess.Popen([str(RUA), *argv], env=environment, cwd=workdir, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    else:
        process = RuaProcess(argv, environment, workdir, log_path)
    server = LiveServer(f"http://127.0.0.1:{port}", database_url, data_dir, log_path,
                        create_db_engine(database_url))
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=server.url, timeout=5) as probe:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"rua serve exited with {process.returncode}: {server.log_text()[-3000:]}")
                try:
                    probe.get("/healthz")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        pytest.fail("rua serve did not answer within 60 s")
                    time.sleep(0.1)
        yield server
    finally:
        for client in server.clients:
            client.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        server.engine.dispose()
