"""The overview and the reports pages in a real Chromium: exact numbers per class, the reporter
filter, drawn figures, drill-down from the list to a report to its XML and download, hostile
report text shown escaped, a phone-sized screen, and a new install's empty state with an upload
through the form."""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from app.dashboard_users import create_user
from app.db import create_db_engine
from tests.dashboard_site import (
    ARTIFACTS,
    HOSTILE_FROM,
    HOSTILE_ORG,
    PASSWORD,
    USERNAME,
    DashboardSite,
    SiteHistory,
    plotted,
    sign_in,
)
from tests.live_server import run_server

CLASSES = ("aligned", "forwarded", "forwarding_failure", "misconfigured", "unauthorised")
FIXTURE_REPORT = Path(__file__).parent / "fixtures" / "failure" / "aggregate_2026-11-01.xml"
FIXTURE_MESSAGES = 4 + 9 + 2
FIGURES = ("overview-classes", "overview-pass-rate", "overview-dispositions")


HOSTILE_MESSAGES = 1
"""the hostile report (last day) holds one record of one message, from nobody's address:
unauthorised"""


def judged_classes(history: SiteHistory) -> dict[str, int]:
    """Messages per class for the history's domain and window: SiteHistory's table, plus the
    hostile report's one message, which nobody authorises."""
    classes = {name: history.total(name) for name in CLASSES}
    classes["unauthorised"] += HOSTILE_MESSAGES
    return classes


def _number(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def _cards(page: Any) -> dict[str, int]:
    cards = {name: _number(page.locator(f".class-card[data-class={name}] .messages").inner_text())
             for name in CLASSES}
    cards["messages"] = _number(page.locator("#card-messages").inner_text())
    return cards


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def _shot(page: Any, name: str) -> None:
    """A screenshot of a page on the way (the `page` fixture keeps only the last one)."""
    shots = ARTIFACTS / "dashboard"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_overview_numbers_filters_figures_and_phone(page, dashboard_site: DashboardSite):
    history = dashboard_site.history
    view = {"domain": history.domain, **history.window()}
    sign_in(page, dashboard_site, "/?" + urlencode(view))
    assert page.locator("h1").inner_text() == "Overview"

    # the cards: exactly the history, class by class
    expected = judged_classes(history)
    expected["messages"] = history.total() + HOSTILE_MESSAGES
    assert _cards(page) == expected

    # the figures are drawn, with the same numbers per day
    for figure_id in FIGURES:
        plotted(page, figure_id)
        assert page.locator(f"#{figure_id} .main-svg").count() >= 1
    assert page.locator(".main-svg").count() >= len(FIGURES)
    traces = {trace["name"]: trace for trace in plotted(page, "overview-classes")}
    labels = {"aligned": "Aligned", "forwarded": "Forwarded", "forwarding_failure": "Forwarding failure",
              "misconfigured": "Misconfigured", "unauthorised": "Unauthorised"}
    per_day = {name: expected[name] // history.days for name in CLASSES}  # hostile: on the last day
    for name, label in labels.items():
        assert traces[label]["y"][:-1] == [per_day[name]] * (history.days - 1), name
        assert sum(traces[label]["y"]) == expected[name]
        assert traces[label]["customdata"][0].startswith("/reports?")  # a bar drills down
    assert "Not judged yet" not in traces  # everything was judged
    dispositions = plotted(page, "overview-dispositions")[0]
    by_disposition = dict(zip(dispositions["x"], dispositions["y"], strict=True))
    assert by_disposition["reject"] == history.total("unauthorised")  # the hostile one was let through
    assert by_disposition["none"] == history.total("aligned") + history.total("forwarded") + HOSTILE_MESSAGES
    quarantined = history.total("forwarding_failure") + history.total("misconfigured")
    assert by_disposition["quarantine"] == quarantined

    # the JSON twin says the same, and the CSV export answers
    json_url = page.locator(".exports a[type='application/json']").get_attribute("href")
    answer = page.request.get(dashboard_site.url + json_url)
    assert answer.status == 200
    classes = answer.json()["classes"]
    assert {name: classes[name] for name in CLASSES} == {name: expected[name] for name in CLASSES}
    csv_url = page.locator(".exports a[type='text/csv']").get_attribute("href")
    csv_answer = page.request.get(dashboard_site.url + csv_url)
    assert csv_answer.status == 200 and csv_answer.text().startswith("day,")

    # the top sources link to their pages, by address and by sender; the policy table names the domain
    links = [link.get_attribute("href") for link in page.locator("table.top-sources a").all()]
    assert any(link.startswith(f"/sources/ip/{history.ips['own']}?") for link in links), links
    assert any(link.startswith("/sources/service/Test%20Relay?") for link in links), links
    assert page.locator("table.policies th[scope=row]", has_text=history.domain).count() == 1

    _shot(page, "overview")

    # the reporter filter: Outlook.com only reports the aligned source; the URL keeps the view
    page.fill("input[name=org]", "Outlook.com")
    page.click(".filters button[type=submit]")
    page.wait_for_url(re.compile(r".*org=Outlook\.com.*"))
    params = _query(page.url)
    assert params["org"] == ["Outlook.com"] and params["domain"] == [history.domain]
    assert params["since"] == [view["since"]] and params["until"] == [view["until"]]
    outlook = {name: 0 for name in CLASSES}
    outlook["aligned"] = outlook["messages"] = history.outlook_per_day * history.days
    assert _cards(page) == outlook
    plotted(page, "overview-classes")

    # on a phone the page reflows instead of scrolling sideways
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(dashboard_site.url + "/?" + urlencode(view))
    plotted(page, "overview-classes")
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    _shot(page, "overview-phone")


def test_reports_drill_down_xml_download_and_hostile_text(page, dashboard_site: DashboardSite):
    history = dashboard_site.history
    view = {"domain": history.domain, **history.window()}
    sign_in(page, dashboard_site, "/reports?" + urlencode(view))
    assert page.locator("h1").inner_text() == "Reports"
    reports = history.days * 2 + 1  # two reporters a day, and the hostile one
    assert page.locator("table.reports-table caption").inner_text().startswith(f"{reports} reports")
    assert page.locator("table.reports-table tbody tr").count() == reports
    # newest first: the last day's reports (the hostile one among them) lead
    first_period = page.locator("table.reports-table tbody tr td.period").first.inner_text()
    assert first_period == history.last_day.date().isoformat()
    # the hostile report's org_name is text, never markup
    assert page.get_by_role("link", name=HOSTILE_ORG).count() == 1
    api = page.request.get(dashboard_site.url + page.locator(".exports a[type='application/json']")
                           .get_attribute("href")).json()
    assert api["total"] == reports and len(api["items"]) == reports
    assert page.request.get(dashboard_site.url + page.locator(".exports a[type='text/csv']")
                            .get_attribute("href")).status == 200

    _shot(page, "reports")

    # the reporter filter narrows the list and goes into the URL
    page.fill("input[name=org]", "Outlook.com")
    page.click(".filters button[type=submit]")
    page.wait_for_url(re.compile(r".*org=Outlook\.com.*"))
    assert page.locator("table.reports-table tbody tr").count() == history.days
    assert set(page.locator("table.reports-table a.report-link").all_inner_texts()) == {"Outlook.com"}

    # drill down: google.com's report of the first day, its records, its XML, its download
    page.goto(dashboard_site.url + "/reports?" + urlencode({**view, "org": "google.com"}))
    page.locator("table.reports-table a.report-link").last.click()
    page.wait_for_url(re.compile(r".*/reports/\d+(\?.*)?$"))
    assert page.locator("h1").inner_text() == "Report from google.com"
    rows = page.locator("table.records-table tbody tr")
    assert rows.count() == 5
    badges = set(page.locator("table.records-table .badge").all_inner_texts())
    assert badges == {name.replace("_", " ") for name, count in judged_classes(history).items() if count}
    source_links = page.locator("table.records-table a[href^='/sources/ip/']").all()
    assert {link.get_attribute("href") for link in source_links} >= {
        f"/sources/ip/{ip}" for ip in history.ips.values()}
    _shot(page, "report")
    download = page.locator("a[href$='/raw']").first.get_attribute("href")
    json_link = page.locator(".exports a").first.get_attribute("href")
    report_json = page.request.get(dashboard_site.url + json_link)
    assert report_json.status == 200 and len(report_json.json()["records"]) == 5
    page.get_by_role("link", name="View the original XML").click()
    page.wait_for_url(re.compile(r".*/reports/\d+/xml$"))
    shown = page.locator("pre.xml").inner_text()
    assert "<org_name>google.com</org_name>" in shown and "<feedback" in shown
    _shot(page, "report-xml")
    raw = page.request.get(dashboard_site.url + download)
    assert raw.status == 200 and b"<feedback" in raw.body()
    assert page.locator("a[href$='/raw']").get_attribute("href") == download

    # the hostile report: shown as text on its page, in its XML, and no script ran (the fixture checks)
    page.goto(f"{dashboard_site.url}/reports/{history.hostile_report_id}")
    assert page.locator("h1 .reporter").inner_text() == HOSTILE_ORG
    assert page.locator("table.records-table td", has_text=HOSTILE_FROM).count() == 1
    assert page.locator("img[src=x]").count() == 0 and page.locator("main script").count() == 0
    page.goto(f"{dashboard_site.url}/reports/{history.hostile_report_id}/xml")
    assert "alert(1)" in page.locator("pre.xml").inner_text()

    # an unknown report is a 404 page
    missing = page.request.get(dashboard_site.url + "/reports/99999999", headers={"Accept": "text/html"})
    assert missing.status == 404 and "Report not found" in missing.text()


def test_empty_install_explains_how_to_start_and_takes_an_upload(page, sqlite_template: Path):
    work = Path(tempfile.mkdtemp(prefix="rua-dashboard-empty-"))
    try:
        database = work / "rua.db"
        shutil.copy(sqlite_template, database)
        url = f"sqlite:///{database}"
        engine = create_db_engine(url)
        create_user(engine, USERNAME, PASSWORD)
        engine.dispose()
        report = work / "google.xml.gz"
        report.write_bytes(gzip.compress(FIXTURE_REPORT.read_bytes()))
        junk = work / "notes.txt"
        junk.write_text("this is not a report\n")
        with run_server(url, work, env={"RUA_REPORT_ADDRESS": "dmarc@reports.example.net",
                                        "RUA_COLLECT_IN_SERVE": "false"}) as server:
            site = DashboardSite(server, None)  # type: ignore[arg-type]
            sign_in(page, site, "/")
            setup = page.locator("section.setup")
            text = setup.inner_text()
            record = '_dmarc.example.com. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@reports.example.net"'
            assert record in text
            assert 'example.com._report._dmarc.reports.example.net. IN TXT "v=DMARC1"' in text
            assert "rua ingest" in text and f"{server.url}/api/v1/reports" in text
            assert page.locator(".main-svg").count() == 0
            _shot(page, "overview-empty")

            page.set_input_files("#upload-file", [str(report), str(junk)])
            page.click(".upload-form button[type=submit]")
            page.wait_for_url(re.compile(r".*/upload$"))
            assert page.locator("#reports-new").inner_text() == "1"
            quarantined = page.locator(".upload-input.status-failed")
            assert quarantined.count() == 1 and "notes.txt" in quarantined.inner_text()
            assert "Quarantined" in quarantined.inner_text()
            assert page.locator(".upload-input.status-ok").count() == 1
            report_link = page.locator(".upload-input.status-ok a[href^='/reports/']").get_attribute("href")
            _shot(page, "upload")

            # the overview has filled: the report's messages, not judged yet (no DNS in this server)
            page.get_by_role("link", name="See the overview").click()
            page.wait_for_url(server.url + "/")
            assert _number(page.locator("#card-messages").inner_text()) == FIXTURE_MESSAGES
            pending = page.locator(".class-card[data-class=pending] .messages").inner_text()
            assert _number(pending) == FIXTURE_MESSAGES
            traces = plotted(page, "overview-classes")
            assert sum(sum(trace["y"]) for trace in traces) == FIXTURE_MESSAGES
            assert page.locator("section.setup").count() == 0

            # the uploaded gzip's XML is shown unpacked
            page.goto(server.url + report_link + "/xml")
            assert "<report_id>agg-2026-11-01</report_id>" in page.locator("pre.xml").inner_text()
            assert "gzip" in page.locator("main").inner_text()
    finally:
        shutil.rmtree(work, ignore_errors=True)
