"""Authentication against the running server, on SQLite and PostgreSQL.

Every route the app has (read from `create_app()`, so routes added later are checked too,
and compared with the running server's OpenAPI schema) refuses requests without a usable
token, refuses tokens made for another purpose, and admits admin tokens; only `/healthz`,
`/readyz` and, as configured, `/metrics` and the docs answer anyone. Tokens and passwords
never reach the server's log, in either log format.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from app.api_tokens import Scope, authenticate, revoke_tokens
from app.dashboard_users import verify_login
from app.main import create_app
from app.settings import Settings
from tests.live_server import LiveServer, run_server

ALWAYS_PUBLIC = frozenset({"/healthz", "/readyz"})
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")
MANAGEMENT = ("/api/v1/tokens", "/api/v1/users")
UPLOAD = ("POST", "/api/v1/reports")
PATH_PARAMETER = re.compile(r"\{[^}]+\}")
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    in_schema: bool

    @property
    def url(self) -> str:
        """The template with each parameter given a plausible value (one no row has)."""
        return PATH_PARAMETER.sub("999999", self.template)

    @property
    def is_dashboard(self) -> bool:
        """A dashboard page or form: signed in to with a session, never with a token."""
        return not self.template.startswith(("/api/", *DOCS_PATHS, "/metrics")) \
            and self.template not in ALWAYS_PUBLIC

    @property
    def is_dashboard_public(self) -> bool:
        return self.template in ("/login", "/static/{name}")

    def is_public(self, settings: Settings) -> bool:
        path = self.template
        return (path in ALWAYS_PUBLIC or (path == "/metrics" and settings.public_metrics)
                or (settings.public_docs and (path in DOCS_PATHS or path.startswith("/docs/"))))

    def refused_scopes(self) -> set[Scope]:
        """Scopes whose tokens must get 403 here: managing tokens and users is for admins,
        reading for read tokens, uploading and other changes are not for read tokens."""
        if self.template.startswith(MANAGEMENT):
            return {Scope.INGEST, Scope.READ}
        if self.method == "GET":
            return {Scope.INGEST}
        return {Scope.READ}

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def app_endpoints(settings: Settings) -> list[Endpoint]:
    """Every method and path the app answers, whether in its OpenAPI schema or not."""
    endpoints = []
    for route in iter_route_contexts(create_app(settings).routes):
        path = route.path_format or route.path
        assert path, f"a route without a path: {route.original_route!r}"
        methods = route.methods or {"GET"}  # a mount: probe what it serves
        if route.methods is None:
            path = path.rstrip("/") + "/999999"
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            endpoints.append(Endpoint(method, path, bool(getattr(route, "include_in_schema", False))))
    return endpoints


def server_settings(server: LiveServer, public_metrics: bool = True, public_docs: bool = False) -> Settings:
    """The settings the server runs with, as far as routes and their access depend on them."""
    return Settings(database_url=server.database_url, data_dir=server.data_dir,
                    public_metrics=public_metrics, public_docs=public_docs)


def assert_unauthorized(response: httpx.Response, endpoint: Endpoint, kind: str, what: str) -> None:
    context = f"{endpoint} with {what}: {response.status_code} {response.text[:300]}"
    assert response.status_code == 401, context
    assert response.headers["content-type"].startswith(PROBLEM), context
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), context
    body = response.json()
    assert body["status"] == 401 and body["type"] == f"urn:rua:problem:{kind}", context


def assert_admitted(response: httpx.Response, endpoint: Endpoint, what: str) -> None:
    assert response.status_code not in (401, 403) and response.status_code < 500, \
        f"{endpoint} with {what}: {response.status_code} {response.text[:300]}"


def sweep(server: LiveServer, settings: Settings) -> list[str]:
    """Try every endpoint with no token, bad ones and each scope; returns every secret sent."""
    endpoints = app_endpoints(settings)
    revoked = server.token(Scope.ADMIN, name="revoked-admin")
    assert len(revoke_tokens(server.engine, "revoked-admin")) == 1
    unknown = "rua_" + secrets.token_urlsafe(32)
    garbage = "not-a-token-" + secrets.token_hex(8)
    basic = "Basic " + secrets.token_hex(12)
    good = {scope: server.token(scope) for scope in Scope}
    bad_headers = {  # Authorization value -> the problem it must get
        "Bearer": "unauthorized", basic: "unauthorized", good[Scope.ADMIN]: "unauthorized",
        f"Token {good[Scope.ADMIN]}": "unauthorized", f"Bearer {unknown}": "invalid-token",
        "Bearer rua_": "invalid-token",
        f"Bearer {garbage}": "invalid-token", f"Bearer {revoked}": "invalid-token",
        f"Bearer {good[Scope.ADMIN]} {good[Scope.READ]}": "invalid-token",
    }
    with httpx.Client(base_url=server.url, timeout=30) as client:
        public = [endpoint for endpoint in endpoints if endpoint.is_public(settings)]
        assert {e.template for e in public} >= ALWAYS_PUBLIC
        for endpoint in public:
            assert_admitted(client.request(endpoint.method, endpoint.url), endpoint, "no token")

        admin_header = {"Authorization": f"Bearer {good[Scope.ADMIN]}"}
        for endpoint in (e for e in endpoints if e.is_dashboard):
            if endpoint.is_dashboard_public:
                assert client.request(endpoint.method, endpoint.url).status_code < 500, endpoint
                continue
            # no session: the login page first, whatever token comes along
            for headers in ({}, admin_header):
                response = client.request(endpoint.method, endpoint.url, headers=headers)
                assert response.status_code == 303, f"{endpoint}: {response.status_code}"
                assert response.headers["location"].startswith("/login?next="), endpoint

        for endpoint in (e for e in endpoints if not e.is_public(settings) and not e.is_dashboard):
            assert_unauthorized(client.request(endpoint.method, endpoint.url), endpoint, "unauthorized",
                                "no token")
            for header, kind in bad_headers.items():
                response = client.request(endpoint.method, endpoint.url, headers={"Authorization": header})
                assert_unauthorized(response, endpoint, kind, f"Authorization: {header[:20]}...")
            refused = endpoint.refused_scopes()
            for scope in Scope:
                response = client.request(endpoint.method, endpoint.url,
                                          headers={"Authorization": f"Bearer {good[scope]}"})
                if scope in refused:
                    assert response.status_code == 403, f"{endpoint} with a {scope} token: {response.text}"
                    assert response.headers["content-type"].startswith(PROBLEM)
                    assert response.json()["type"] == "urn:rua:problem:insufficient-scope"
                    assert response.json()["required_scope"] in {s.value for s in Scope} - {scope.value}
                else:
                    assert_admitted(response, endpoint, f"a {scope} token")

        schema = client.get("/openapi.json", headers={"Authorization": f"Bearer {good[Scope.READ]}"})
        assert schema.status_code == 200, schema.text
        in_schema = {(method.upper(), path) for path, operations in schema.json()["paths"].items()
                     for method in operations}
        assert in_schema == {(e.method, e.template) for e in endpoints if e.in_schema}, \
            "the running server's schema and create_app()'s routes differ"
    return [*good.values(), revoked, unknown, garbage, basic]


def assert_not_logged(server: LiveServer, secrets_sent: list[str], path: str = "/api/v1/tokens") -> None:
    log = server.log_text()
    assert path in log, f"the server logged no request to {path}, so this check would prove nothing"
    for secret in secrets_sent:
        assert secret not in log, f"a secret ({secret[:8]}...) is in the server's log"


# -- every route -------------------------------------------------------------------------------

def test_every_route_needs_a_token_fit_for_it(live_server: LiveServer) -> None:
    """The defaults: /metrics public, the docs behind a read token."""
    settings = server_settings(live_server)
    assert settings.public_metrics and not settings.public_docs
    secrets_sent = sweep(live_server, settings)
    with httpx.Client(base_url=live_server.url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert_unauthorized(client.get("/docs"), Endpoint("GET", "/docs", False), "unauthorized", "no token")
    assert_not_logged(live_server, secrets_sent)


@pytest.fixture
def configured_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """Private metrics, public docs, and JSON logs."""
    env = {"RUA_LOG_FORMAT": "json", "RUA_PUBLIC_METRICS": "false", "RUA_PUBLIC_DOCS": "true"}
    with run_server(database_url, tmp_path / "configured", env=env) as server:
        yield server


def test_public_routes_follow_the_settings(configured_server: LiveServer) -> None:
    settings = server_settings(configured_server, public_metrics=False, public_docs=True)
    secrets_sent = sweep(configured_server, settings)
    with httpx.Client(base_url=configured_server.url) as client:
        assert client.get("/openapi.json").json()["info"]["title"] == "Rua"
        assert client.get("/docs").status_code == 200
        assert_unauthorized(client.get("/metrics"), Endpoint("GET", "/metrics", True), "unauthorized",
                            "no token")
    assert_not_logged(configured_server, secrets_sent)
    assert '"message"' in configured_server.log_text(), "RUA_LOG_FORMAT=json wrote no JSON"


# -- the admin API -----------------------------------------------------------------------------

def test_tokens_over_the_api(live_server: LiveServer) -> None:
    admin = live_server.client(Scope.ADMIN)
    created = admin.post("/api/v1/tokens", json={"name": "mail-fetcher", "scope": "ingest"})
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    token = body["token"]
    assert set(body) == {"id", "name", "scope", "prefix", "created_at", "last_used_at", "revoked_at", "token"}
    assert (body["name"], body["scope"], body["revoked_at"]) == ("mail-fetcher", "ingest", None)
    assert token.startswith(body["prefix"]) and token.startswith("rua_")
    record = authenticate(live_server.engine, token)
    assert record is not None and record.id == body["id"]

    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {token}"}) as fetcher:
        assert fetcher.get("/api/v1/reports").status_code == 403  # an ingest token cannot read

        listed = admin.get("/api/v1/tokens")
        assert listed.status_code == 200
        mine = [item for item in listed.json() if item["id"] == body["id"]]
        assert mine and "token" not in mine[0] and mine[0]["last_used_at"] is not None
        assert token not in listed.text and record.token_hash not in listed.text

        assert admin.delete(f"/api/v1/tokens/{body['id']}").status_code == 204
        after = fetcher.get("/api/v1/reports")
        assert after.status_code == 401 and after.json()["type"] == "urn:rua:problem:invalid-token"
    again = admin.delete(f"/api/v1/tokens/{body['id']}")
    assert again.status_code == 404 and again.headers["content-type"].startswith(PROBLEM)
    assert admin.delete("/api/v1/tokens/999999").status_code == 404
    assert admin.delete("/api/v1/tokens/99999999999999999999").status_code == 422  # not a 500
    assert body["id"] not in [item["id"] for item in admin.get("/api/v1/tokens").json()]
    revoked = [item for item in admin.get("/api/v1/tokens", params={"include_revoked": "true"}).json()
               if item["id"] == body["id"]]
    assert revoked and revoked[0]["revoked_at"] is not None

    for bad in ({"name": "x", "scope": "superuser"}, {"name": "", "scope": "read"},
                {"name": "42", "scope": "read"}, {"scope": "read"}):
        refused = admin.post("/api/v1/tokens", json=bad)
        assert refused.status_code == 422 and refused.headers["content-type"].startswith(PROBLEM), bad
    assert_not_logged(live_server, [token])


def test_users_over_the_api(live_server: LiveServer) -> None:
    admin = live_server.client(Scope.ADMIN)
    password = "pw-" + secrets.token_hex(8)
    created = admin.post("/api/v1/users", json={"username": "alice", "password": password})
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"id", "username", "created_at", "password_changed_at", "disabled"}
    assert created.json()["username"] == "alice" and password not in created.text
    assert verify_login(live_server.engine, "alice", password) is not None
    assert verify_login(live_server.engine, "alice", password + "x") is None

    other = "pw-" + secrets.token_hex(8)
    taken = admin.post("/api/v1/users", json={"username": "alice", "password": other})
    assert taken.status_code == 409 and taken.json()["type"] == "urn:rua:problem:user-exists"
    assert verify_login(live_server.engine, "alice", password) is not None
    short_password = secrets.token_hex(4)[:7]
    short = admin.post("/api/v1/users", json={"username": "bob", "password": short_password})
    assert short.status_code == 422 and short.headers["content-type"].startswith(PROBLEM)
    assert short_password not in short.text
    assert admin.post("/api/v1/users", json={"username": "bo b", "password": other}).status_code == 422

    listed = admin.get("/api/v1/users")
    assert listed.status_code == 200
    assert [(u["username"], u["disabled"]) for u in listed.json()] == [("alice", False)]
    assert "argon2" not in listed.text

    assert admin.delete("/api/v1/users/alice").status_code == 204
    assert verify_login(live_server.engine, "alice", password) is None
    gone = admin.delete("/api/v1/users/alice")
    assert gone.status_code == 404 and gone.json()["type"] == "urn:rua:problem:user-not-found"
    assert admin.get("/api/v1/users").json() == []
    assert_not_logged(live_server, [password, other, short_password], "/api/v1/users")
