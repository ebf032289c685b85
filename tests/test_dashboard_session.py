"""Signing in and out of the dashboard, in a real Chromium and over plain HTTP: cookies,
CSRF, throttling, redirects, and the API answering a signed-in browser's JSON links."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.dashboard_site import PASSWORD, USERNAME, DashboardSite, sign_in


def login_token(client: httpx.Client) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def post_login(client: httpx.Client, username: str = USERNAME, password: str = PASSWORD,
               next_url: str = "/") -> httpx.Response:
    return client.post("/login", data={"username": username, "password": password, "next": next_url,
                                       "csrf_token": login_token(client)})


def test_sign_in_and_out_in_the_browser(page, dashboard_site: DashboardSite):
    page.goto(dashboard_site.url + "/reports?" + "since=2026-10-01")
    assert page.url.startswith(dashboard_site.url + "/login?next=")  # anonymous: the login page first
    page.fill("#username", USERNAME)
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "Wrong username or password."
    assert page.input_value("#username") == USERNAME  # kept, so only the password is typed again
    # the refusal is a 401 (so fail2ban and the access log see it), which Chromium logs as an error
    assert page.watch.errors == ["Failed to load resource: the server responded with a status of 401 "
                                 "(Unauthorized)"]
    page.watch.errors.clear()
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(dashboard_site.url + "/reports?since=2026-10-01")  # back where the visitor was going
    cookie = next(c for c in page.context.cookies() if c["name"] == "rua_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login$"))
    page.goto(dashboard_site.url + "/")
    assert "/login" in page.url  # the session is gone, not only the cookie


def test_anonymous_visitors_see_nothing(dashboard_site: DashboardSite):
    with httpx.Client(base_url=dashboard_site.url, headers={"Accept": "text/html"}) as client:
        for path in ("/", "/sources", "/forwarding", "/reports", "/dns", "/failures", "/tls"):
            answer = client.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path
        assert client.get("/api/v1/summary").status_code == 401


def test_the_login_form_needs_its_own_token(dashboard_site: DashboardSite):
    with httpx.Client(base_url=dashboard_site.url) as client:
        forged = client.post("/login", data={"username": USERNAME, "password": PASSWORD, "next": "/"})
        assert forged.status_code == 403 and "expired" in forged.text
        assert "rua_session" not in client.cookies


def test_no_open_redirect_and_a_signed_in_browser_reads_the_api(dashboard_site: DashboardSite):
    with httpx.Client(base_url=dashboard_site.url) as client:
        answer = post_login(client, next_url="//evil.example/")
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        # the pages' JSON and CSV links work with the session alone, for reading
        assert client.get("/api/v1/summary").status_code == 200
        assert client.get("/api/v1/reports", params={"format": "csv"}).status_code == 200
        assert client.post("/api/v1/reports", content=b"x").status_code == 401  # never for writing
        assert client.get("/api/v1/tokens").status_code == 401  # nor for admin reads


def test_sign_out_needs_the_sessions_csrf_token(dashboard_site: DashboardSite):
    with httpx.Client(base_url=dashboard_site.url, headers={"Accept": "text/html"}) as client:
        post_login(client)
        refused = client.post("/logout", data={"csrf_token": "forged"})
        assert refused.status_code == 403 and "did not come from this dashboard" in refused.text
        assert client.get("/reports").status_code == 200  # still signed in
        page = client.get("/reports").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        assert client.post("/logout", data={"csrf_token": token.group(1)}).status_code == 303
        assert client.get("/reports").status_code == 303


@pytest.mark.slow
def test_guessing_is_throttled_and_says_so(dashboard_site: DashboardSite):
    with httpx.Client(base_url=dashboard_site.url) as client:
        for _ in range(5):
            assert post_login(client, username="mallory", password="wrong-password").status_code == 401
        throttled = post_login(client, username="mallory", password="wrong-password")
        assert throttled.status_code == 429 and "Too many failed sign-ins" in throttled.text
        assert int(throttled.headers["Retry-After"]) > 0
        # another user from the same address is not locked out by mallory's guesses
        assert post_login(client).status_code == 303


def test_security_headers_on_pages(dashboard_site: DashboardSite):
    with httpx.Client(base_url=dashboard_site.url) as client:
        answer = client.get("/login")
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["x-frame-options"] == "DENY"
        assert client.get("/static/plotly.min.js").status_code == 200  # served here, no CDN
        assert client.get("/static/..%2Fapp%2Fsettings.py").status_code == 404


def test_signing_in_in_the_browser_lands_on_the_overview(page, dashboard_site: DashboardSite):
    sign_in(page, dashboard_site)
    assert page.url == dashboard_site.url + "/"
