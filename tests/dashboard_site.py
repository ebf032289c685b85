"""A dashboard to test in a real browser: `rua serve` over a database filled with a known
history, judged against a real DNS server, and a headless Chromium driven by playwright.

The history (`SiteHistory`) is the same every time, so tests assert exact numbers: one
domain, ten days, two reporters, and one source per class:

| source            | who                       | per day, google | class              |
|-------------------|---------------------------|-----------------|--------------------|
| `NET.2`           | the domain's own server   | 100             | aligned            |
| `NET.66`          | "Test Relay" (forwarder)  | 20              | forwarded          |
| `NET.66`          | the same, DKIM broken     | 5               | forwarding_failure |
| `NET.130`         | "Test ESP" (SPF include)  | 10              | misconfigured      |
| `203.0.113.9`     | nobody                    | 3               | unauthorised       |

Outlook.com reports the aligned source too (50 a day), so a reporter filter changes totals.
A separate report on the last day carries hostile text in its org_name and header_from.
With `../shared/corpus` present, its aggregate, failure and TLS files are ingested too,
under other domains (tests filter by `SiteHistory.domain` where they count).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine

from app.dashboard_users import create_user
from app.db import create_db_engine
from ingest.dns_resolver import LiveResolver
from ingest.dns_watch import cycle
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline
from ingest.reverse_dns import TtlCache
from ingest.sender_catalogue import SenderCatalogue
from tests import samples
from tests.dns_server import txt
from tests.live_server import LiveServer, run_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
ARTIFACTS = Path(os.environ.get("RUA_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "test-artifacts"))
USERNAME, PASSWORD = "alice", "correct horse battery"
HOSTILE_ORG = "<script>alert('org')</script>"
HOSTILE_FROM = '"><img src=x onerror=alert(1)>'
DAYS = 10
FIRST_DAY = datetime(2026, 10, 1, tzinfo=UTC)


@dataclass
class SiteHistory:
    """The names and numbers of the history the site was filled with."""

    domain: str
    relay: str
    esp: str
    net: str
    days: int = DAYS
    first_day: datetime = FIRST_DAY
    per_day: dict[str, int] = field(default_factory=lambda: {
        "aligned": 150, "forwarded": 20, "forwarding_failure": 5, "misconfigured": 10, "unauthorised": 3})
    outlook_per_day: int = 50
    """of the aligned 150 a day, Outlook.com reports 50 (google.com the rest)"""
    hostile_report_id: int | None = None

    @property
    def ips(self) -> dict[str, str]:
        return {"own": f"{self.net}.2", "relay": f"{self.net}.66", "esp": f"{self.net}.130",
                "spoofer": "203.0.113.9"}

    def total(self, record_class: str | None = None) -> int:
        per_day = self.per_day[record_class] if record_class else sum(self.per_day.values())
        return per_day * self.days

    @property
    def last_day(self) -> datetime:
        return self.first_day + timedelta(days=self.days - 1)

    def window(self) -> dict[str, str]:
        """since/until covering the whole history, as the pages' URLs take them."""
        return {"since": self.first_day.date().isoformat(), "until": self.last_day.date().isoformat()}


def _dkim_txt() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def _catalogue(path: Path, relay: str, esp: str) -> SenderCatalogue:
    path.write_text(f'''
[[service]]
name = "Test Relay"
type = "forwarder"
ptr_domains = ["{relay}"]

[[service]]
name = "Test ESP"
type = "esp"
spf_includes = ["_spf.{esp}"]
dkim_domains = ["{esp}"]
''')
    return SenderCatalogue.load(path)


def _day_report(history: SiteHistory, day: int, org: str) -> bytes:
    domain, esp, ips = history.domain, history.esp, history.ips
    begin = history.first_day + timedelta(days=day)
    if org == "Outlook.com":
        records = [samples.Rec(source_ip=ips["own"], count=str(history.outlook_per_day), header_from=domain,
                               envelope_from=domain, dkim_results=[(domain, "s1", "pass")],
                               spf_results=[(domain, "mfrom", "pass")])]
    else:
        per_day = history.per_day
        records = [
            samples.Rec(source_ip=ips["own"], count=str(per_day["aligned"] - history.outlook_per_day),
                        header_from=domain, envelope_from=domain, dkim_results=[(domain, "s1", "pass")],
                        spf_results=[(domain, "mfrom", "pass")]),
            # forwarded: the relay re-sends with the original envelope, which SPF refuses from its
            # address; the signature survives
            samples.Rec(source_ip=ips["relay"], count=str(per_day["forwarded"]), spf="fail",
                        header_from=domain, envelope_from=domain,
                        dkim_results=[(domain, "s1", "pass")],
                        spf_results=[(domain, "mfrom", "fail")]),
            # the relay broke the signature (a footer added): a forwarding failure
            samples.Rec(source_ip=ips["relay"], count=str(per_day["forwarding_failure"]), dkim="fail",
                        spf="fail", disposition="quarantine", header_from=domain, envelope_from=domain,
                        dkim_results=[(domain, "s1", "fail")], spf_results=[(domain, "mfrom", "fail")]),
            # the ESP is authorised by the domain's SPF include but bounces to itself and signs as itself
            samples.Rec(source_ip=ips["esp"], count=str(per_day["misconfigured"]), dkim="fail", spf="fail",
                        disposition="quarantine", header_from=domain, envelope_from=f"bounce.{esp}",
                        dkim_results=[(esp, "k1", "pass")], spf_results=[(f"bounce.{esp}", "mfrom", "pass")]),
            samples.Rec(source_ip=ips["spoofer"], count=str(per_day["unauthorised"]), dkim="fail", spf="fail",
                        disposition="reject", header_from=domain, envelope_from=domain,
                        dkim_results=[], spf_results=[(domain, "mfrom", "fail")]),
        ]
    return samples.aggregate_xml(records, org_name=org, report_id=f"{org}-{day}", domain=domain,
                                 p="quarantine", begin=str(int(begin.timestamp())),
                                 end=str(int((begin + timedelta(days=1)).timestamp()) - 1))


def _hostile_report(history: SiteHistory) -> bytes:
    begin = history.last_day
    record = samples.Rec(source_ip="198.51.100.7", count="1", dkim="fail", spf="fail",
                         header_from=HOSTILE_FROM, envelope_from=None, dkim_results=[],
                         spf_results=[(history.domain, "mfrom", "fail")])
    xml = samples.aggregate_xml([record], org_name="ORG_PLACEHOLDER", report_id="hostile-1",
                                domain=history.domain, begin=str(int(begin.timestamp())),
                                end=str(int((begin + timedelta(days=1)).timestamp()) - 1))
    # the XML must carry the hostile text as text: escape it for XML, the parser gives it back
    escaped_org = HOSTILE_ORG.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped_from = HOSTILE_FROM.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = xml.decode().replace("ORG_PLACEHOLDER", escaped_org, 1).replace(f"noreply@{escaped_org}",
                                                                           "noreply@hostile.example")
    text = re.sub(r"<header_from>.*?</header_from>", f"<header_from>{escaped_from}</header_from>", text)
    return text.encode()


def fill_site(engine: Engine, data_dir: Path, nsd: Any, corpus: Path | None, work: Path) -> tuple[SiteHistory,
                                                                                                  SenderCatalogue,
                                                                                                  LiveResolver]:
    """Ingest the history, snapshot its DNS from the suite's NSD, identify and judge it."""
    net = "198.18.77"
    domain, relay, esp = nsd.new_zone_name("shop"), nsd.new_zone_name("relay"), nsd.new_zone_name("esp")
    history = SiteHistory(domain, relay, esp, net)
    nsd.set_zone(domain, [
        txt("@", f"v=spf1 ip4:{net}.0/28 include:_spf.{esp} -all"),
        txt("_dmarc", f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}"),
        txt("s1._domainkey", _dkim_txt()),
        "@ IN MX 10 mail", f"mail IN A {net}.2",
    ])
    nsd.set_zone(relay, [f"mx1 IN A {net}.66"])
    nsd.set_zone(esp, [txt("_spf", f"v=spf1 ip4:{net}.128/25 -all"), txt("k1._domainkey", _dkim_txt())])
    nsd.set_zone("77.18.198.in-addr.arpa", [f"66 IN PTR mx1.{relay}.", f"2 IN PTR mail.{domain}."])
    nsd.reload()

    pipeline = IngestPipeline(engine, data_dir, UnpackLimits())
    inbox = work / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    for day in range(history.days):
        for org in ("google.com", "Outlook.com"):
            path = inbox / f"{org}-{day}.xml"
            path.write_bytes(_day_report(history, day, org))
            assert pipeline.ingest_path(path).status == "ok"
    hostile = inbox / "hostile.xml"
    hostile.write_bytes(_hostile_report(history))
    outcome = pipeline.ingest_path(hostile)
    assert outcome.reports, outcome
    history.hostile_report_id = outcome.reports[0].report_id
    if corpus is not None:
        for path in sorted(corpus.iterdir()):
            if path.is_file() and path.name != "MANIFEST.tsv":
                pipeline.ingest_path(path)
    live = LiveResolver([nsd.nameserver], timeout=0.3, lifetime=0.6)
    catalogue = _catalogue(work / "senders.toml", relay, esp)
    cycle(engine, live, [domain], timedelta(hours=6), catalogue=catalogue, reverse=TtlCache(live))
    return history, catalogue, live


@dataclass
class DashboardSite:
    server: LiveServer
    history: SiteHistory

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def dashboard_site(sqlite_template: Path, nsd: Any) -> Iterator[DashboardSite]:
    """One filled, judged site per test module (SQLite), served by `rua serve`, with a user."""
    work = Path(tempfile.mkdtemp(prefix="rua-dashboard-"))
    database = work / "rua.db"
    shutil.copy(sqlite_template, database)
    url = f"sqlite:///{database}"
    engine = create_db_engine(url)
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
    history, _, _ = fill_site(engine, work / "serve-data", nsd, shared if shared.is_dir() else None, work)
    create_user(engine, USERNAME, PASSWORD)
    engine.dispose()
    env = {"RUA_DNS_NAMESERVERS": nsd.nameserver, "RUA_SENDERS_FILE": str(work / "senders.toml"),
           "RUA_REPORT_ADDRESS": "dmarc@reports.example.net"}
    with run_server(url, work, env=env) as server:
        yield DashboardSite(server, history)
    shutil.rmtree(work, ignore_errors=True)


# -- the browser --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (tests/services/system-deps.sh installs it)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class PageWatch:
    """What a page did that a test must see: console errors, uncaught exceptions, requests
    that tried to leave 127.0.0.1, and JavaScript dialogs (an alert() is an injected script)."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) at 1280×900. At the end of the test: a screenshot
    is kept under test-artifacts/dashboard/, and the test fails on a console error, an
    uncaught exception, an alert, or any request to a host other than 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watch = PageWatch()

    def guard(route: Any) -> None:
        host = re.match(r"^[a-z]+://([^/:]+)", route.request.url)
        if route.request.url.startswith(("data:", "blob:")) or (host and host.group(1) == "127.0.0.1"):
            route.continue_()
        else:
            watch.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.watch = watch
    page.on("console", lambda message: watch.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shots = ARTIFACTS / "dashboard"
    shots.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(Exception):  # a page that failed to load: the test reports why
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    context.close()
    assert not watch.outside, f"requests left 127.0.0.1: {watch.outside}"
    assert not watch.dialogs, f"a script ran on the page: {watch.dialogs}"
    assert not watch.errors, f"console errors: {watch.errors}"


def sign_in(page: Any, site: DashboardSite, path: str = "/") -> None:
    """Open `path` as an anonymous visitor, sign in on the login page it leads to, and come
    back to `path`."""
    page.goto(site.url + path)
    page.fill("#username", USERNAME)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")


def plotted(page: Any, figure_id: str, timeout: float = 15_000) -> Any:
    """Wait for a figure to be drawn; returns its Plotly data (the traces) from the DOM."""
    page.wait_for_selector(f"#{figure_id}[data-drawn=true] .main-svg", timeout=timeout)
    return page.evaluate(f"document.getElementById('{figure_id}').data")
