"""The DNS, failure report and TLS report pages in a real Chromium, with their JSON and CSV twins.

The site's history has one domain with sound DNS; this module adds what the pages are for: a
second watched domain whose DNS is wrong in several ways and then changes (SPF over 10
lookups, a DMARC record losing its rua, a weak and a missing DKIM key), three failure reports
about the site's domain (one with hostile text in the original message's headers), and two
TLS reports with known session counts. All of it goes in before the pages are loaded.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.dns_resolver import LiveResolver
from ingest.dns_snapshot_taker import take_snapshots
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline
from tests import samples
from tests.dashboard_site import ARTIFACTS, DashboardSite, plotted, sign_in
from tests.dns_server import txt
from tests.test_dashboard_session import post_login
from tests.test_dkim_key import rsa_p

HOSTILE_SUBJECT = "<script>alert('subject')</script>"
HOSTILE_HEADER = '"><img src=x onerror=alert(2)>'
HOSTILE_DETAIL = "<img src=x onerror=alert(4)>"
WEAK_SPF = "v=spf1 " + " ".join(f"a:h{n}.example.net" for n in range(1, 12)) + " -all"


@dataclass
class Added:
    """What this module put into the site, beside its SiteHistory."""

    weak: str
    failures: dict[str, int]
    """failure report ids by name: hostile, esp, relay"""
    tls: dict[str, int]
    """TLS report ids by name: first, second"""


def failure_email(domain: str, source_ip: str, arrival: str, auth_failure: str, delivery: str,
                  subject: str, message_id: str, extra_header: str = "") -> bytes:
    """An ARF failure report (RFC 6591) about one message of `domain`."""
    return f"""From: dmarc-reports@receiver.example
To: ruf@{domain}
Subject: Authentication failure report for {domain}
Date: {arrival}
Message-ID: <report-{message_id}@receiver.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b1"

--b1
Content-Type: text/plain; charset="us-ascii"

An authentication failure report for a message from {source_ip}.

--b1
Content-Type: message/feedback-report

Feedback-Type: auth-failure
User-Agent: ReceiverMTA/2.1
Version: 1
Auth-Failure: {auth_failure}
Original-Mail-From: <bounce@{domain}>
Original-Rcpt-To: <alice@receiver.example>
Arrival-Date: {arrival}
Source-IP: {source_ip}
Reported-Domain: {domain}
Identity-Alignment: none
Delivery-Result: {delivery}

--b1
Content-Type: text/rfc822-headers

Received: from sender ([{source_ip}]) by mx.receiver.example; {arrival}
From: Billing <billing@{domain}>
To: Alice <alice@receiver.example>
Subject: {subject}
Date: {arrival}
Message-ID: <{message_id}@{domain}>
{extra_header}
--b1--
""".replace("\n", "\r\n").encode()


def tls_json(organization: str, report_id: str, day: datetime, policies: list[dict[str, Any]]) -> bytes:
    return json.dumps({
        "organization-name": organization, "report-id": report_id,
        "contact-info": "mailto:tls@reporter.example",
        "date-range": {"start-datetime": f"{day:%Y-%m-%d}T00:00:00Z",
                       "end-datetime": f"{day:%Y-%m-%d}T23:59:59Z"},
        "policies": policies}).encode()


def tls_policy(policy_type: str, domain: str, successful: int, failed: int,
               details: list[tuple[str, int, str | None]]) -> dict[str, Any]:
    return {
        "policy": {"policy-type": policy_type, "policy-domain": domain, "mx-host": [f"mail.{domain}"],
                   "policy-string": ["version: STSv1", "mode: enforce", f"mx: mail.{domain}",
                                     "max_age: 86400"]},
        "summary": {"total-successful-session-count": successful, "total-failure-session-count": failed},
        "failure-details": [
            {"result-type": result, "sending-mta-ip": "192.0.2.25", "receiving-mx-hostname": f"mail.{domain}",
             "failed-session-count": count, **({"additional-information": info} if info else {})}
            for result, count, info in details]}


def ingest_one(pipeline: IngestPipeline, work: Path, name: str, data: bytes) -> int:
    path = work / name
    path.write_bytes(data)
    outcome = pipeline.ingest_path(path)
    assert outcome.status == "ok" and len(outcome.reports) == 1, outcome
    report_id: int = outcome.reports[0].report_id
    return report_id


@pytest.fixture(scope="module")
def added(dashboard_site: DashboardSite, nsd: Any, tmp_path_factory: pytest.TempPathFactory) -> Added:
    server, history = dashboard_site.server, dashboard_site.history
    work = tmp_path_factory.mktemp("dns-failures-tls")
    pipeline = IngestPipeline(server.engine, server.data_dir, UnpackLimits())

    # a second watched domain (a policy domain of a report), with DNS wrong in several ways
    weak = nsd.new_zone_name("weak")
    zone = [txt("@", WEAK_SPF), txt("old._domainkey", f"v=DKIM1; k=rsa; p={rsa_p(512)}"),
            "@ IN MX 10 mail", "mail IN A 192.0.2.80"]
    nsd.set_zone(weak, [*zone, txt("_dmarc", f"v=DMARC1; p=none; rua=mailto:dmarc@{weak}")])
    nsd.reload()
    live = LiveResolver([nsd.nameserver], timeout=0.3, lifetime=0.6)
    keys = [(weak, "old"), (weak, "gone")]
    take_snapshots(server.engine, live, [weak], keys)
    nsd.set_zone(weak, [*zone, txt("_dmarc", "v=DMARC1; p=reject")])  # the rua is lost
    nsd.reload()
    take_snapshots(server.engine, live, [weak], keys, at=datetime.now().astimezone() + timedelta(seconds=1))
    ingest_one(pipeline, work, "weak.xml", samples.aggregate_xml(
        [samples.Rec(source_ip="192.0.2.80", count="4", header_from=weak, envelope_from=weak,
                     dkim_results=[(weak, "old", "pass")], spf_results=[(weak, "mfrom", "pass")])],
        org_name="google.com", report_id="weak-1", domain=weak, begin=str(int(history.first_day.timestamp())),
        end=str(int(history.first_day.timestamp()) + 86399)))

    # failure reports about the site's domain, from its sources, on days its history covers
    domain, ips = history.domain, history.ips
    failures = {
        "hostile": ingest_one(pipeline, work, "hostile.eml", failure_email(
            domain, ips["spoofer"], "Mon, 05 Oct 2026 10:00:00 +0000", "dmarc", "reject", HOSTILE_SUBJECT,
            "m-hostile", f"X-Note: {HOSTILE_HEADER}\n")),
        "esp": ingest_one(pipeline, work, "esp.eml", failure_email(
            domain, ips["esp"], "Wed, 07 Oct 2026 09:00:00 +0000", "spf", "spam", "Newsletter", "m-esp")),
        "relay": ingest_one(pipeline, work, "relay.eml", failure_email(
            domain, ips["relay"], "Thu, 08 Oct 2026 09:00:00 +0000", "signature", "delivered", "Re: lunch",
            "m-relay")),
    }
    tls = {
        "first": ingest_one(pipeline, work, "tls-1.json", tls_json("TLS Reporter A", "tls-a-1",
                                                                   history.first_day + timedelta(days=2), [
            tls_policy("sts", domain, 900, 100, [("certificate-expired", 60, HOSTILE_DETAIL),
                                                 ("starttls-not-supported", 40, None)]),
            tls_policy("tlsa", domain, 200, 5, [("dane-required", 5, None)])])),
        "second": ingest_one(pipeline, work, "tls-2.json", tls_json("TLS Reporter B", "tls-b-1",
                                                                    history.first_day + timedelta(days=5), [
            tls_policy("sts", domain, 1000, 0, [])])),
    }
    return Added(weak, failures, tls)


def rows(page: Any, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{selector} tbody tr", "trs => trs.map(tr => [...tr.children].map(cell => cell.innerText.trim()))")


def keep(page: Any, name: str) -> None:
    """A screenshot of this page among the test artifacts (the fixture keeps only the last)."""
    shots = ARTIFACTS / "dashboard"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def signed_in_client(site: DashboardSite) -> httpx.Client:
    client = httpx.Client(base_url=site.url, timeout=30)
    assert post_login(client).status_code == 303
    return client


# -- DNS ------------------------------------------------------------------------------------------

def test_dns_pages_show_records_problems_and_history(page, dashboard_site: DashboardSite, added: Added):
    history = dashboard_site.history
    domain, esp, weak = history.domain, history.esp, added.weak
    sign_in(page, dashboard_site, "/dns")
    assert page.locator("h1").inner_text() == "DNS"
    listed = {row[0].split()[0]: row for row in rows(page, "table.dns-domains")}
    assert {domain, weak} <= set(listed)
    assert listed[domain][1] == "quarantine" and listed[domain][2] == f"mailto:dmarc@{domain}"
    assert listed[domain][3] == "1 / 10" and listed[domain][5] == "0"
    assert listed[weak][1] == "reject" and listed[weak][2] == "none" and listed[weak][3] == "11 / 10"
    weak_problems = int(listed[weak][5])
    keep(page, "dns-domains")
    assert weak_problems >= 4  # over 10 lookups, no rua, a weak key, a missing key

    # the domain filter changes the list and the URL
    page.select_option("select[name=domain]", weak)
    page.click(".filters button[type=submit]")
    page.wait_for_url(re.compile(r".*/dns\?domain="))
    assert [row[0].split()[0] for row in rows(page, "table.dns-domains")] == [weak]

    page.goto(dashboard_site.url + "/dns")
    page.click(f"table.dns-domains a[href='/dns/{domain}']")
    page.wait_for_url(f"**/dns/{domain}")
    assert page.locator("#dns-policy").inner_text() == "quarantine"
    spf = f"v=spf1 ip4:{history.net}.0/28 include:_spf.{esp} -all"
    assert page.locator("#spf code.record").inner_text() == spf
    dmarc = f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}"
    assert page.locator("#dmarc code.record").inner_text() == dmarc
    assert f"rua=mailto:dmarc@{domain}" in page.locator("#dmarc dl").inner_text()
    assert rows(page, "#dkim table")[0][:2] == ["s1", "present"]
    assert page.locator("#dns-problems").inner_text() == "0"
    assert f"10 mail.{domain}" in page.locator("#mx").inner_text()
    traces = plotted(page, "dns-timeline")
    assert page.locator("#dns-timeline .main-svg").count() >= 1
    drawn = {label for trace in traces for label in trace["y"]}
    keep(page, "dns-domain")
    assert {f"{domain} TXT", f"_dmarc.{domain} TXT", f"s1._domainkey.{domain} TXT"} <= drawn

    page.goto(dashboard_site.url + f"/dns/{weak}")
    assert page.locator("#dns-problems").inner_text() == str(weak_problems)
    assert page.locator("#spf li[data-code=too_many_lookups]").count() == 1
    assert page.locator("#dmarc li[data-code=no_rua]").count() == 1
    keys = {row[0]: row[1] for row in rows(page, "#dkim table")}
    assert keys == {"gone": "missing", "old": "weak"}
    changes = rows(page, "table.dns-changes")
    before = f"v=DMARC1; p=none; rua=mailto:dmarc@{weak}"
    assert [change[1:] for change in changes] == [[f"_dmarc.{weak}", "TXT", before, "v=DMARC1; p=reject"]]
    traces = plotted(page, "dns-timeline")
    changed = next(trace for trace in traces if trace["name"] == "Changed")
    assert changed["y"] == [f"_dmarc.{weak} TXT"]


# -- failure reports ------------------------------------------------------------------------------

def test_failure_pages_filter_link_and_escape(page, dashboard_site: DashboardSite, added: Added):
    history = dashboard_site.history
    domain, ips = history.domain, history.ips
    sign_in(page, dashboard_site, f"/failures?domain={domain}")
    listed = rows(page, "table.failures")
    assert [row[2] for row in listed] == [ips["relay"], ips["esp"], ips["spoofer"]]  # newest first
    assert listed[2][3:6] == ["dmarc", "none", "reject"]
    assert "3 failure reports" in page.locator("table.failures caption").inner_text()
    keep(page, "failures")

    page.check("input[name=auth_failure][value=spf]")
    page.click(".filters button[type=submit]")
    page.wait_for_url(re.compile(r".*auth_failure=spf"))
    assert [row[2] for row in rows(page, "table.failures")] == [ips["esp"]]
    page.uncheck("input[name=auth_failure][value=spf]")
    page.fill("input[name=source_ip]", f"{history.net}.0/24")
    page.fill("input[name=since]", "2026-10-08")
    page.click(".filters button[type=submit]")
    page.wait_for_url(re.compile(r".*since=2026-10-08"))
    assert [row[2] for row in rows(page, "table.failures")] == [ips["relay"]]
    json_link = page.locator(".exports a[type='application/json']").get_attribute("href")
    answer = page.request.get(dashboard_site.url + json_link)
    assert answer.status == 200 and [item["source_ip"] for item in answer.json()["items"]] == [ips["relay"]]

    page.goto(dashboard_site.url + f"/failures?domain={domain}&delivery_result=reject")
    page.click("table.failures tbody a[href^='/failures/']")
    page.wait_for_url(f"**/failures/{added.failures['hostile']}")
    headers = {row[0]: row[1] for row in rows(page, "table.headers")}
    assert headers["Subject"] == HOSTILE_SUBJECT and headers["X-Note"] == HOSTILE_HEADER  # shown as text
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    assert page.locator(f"a[href='/sources/ip/{ips['spoofer']}']").count() >= 1
    linked = page.locator("table.linked a[href^='/reports/']")
    assert linked.count() == 1  # google.com's report of 5 October holds the spoofer's record
    assert "3" in rows(page, "table.linked")[0][3]
    report_page = page.request.get(dashboard_site.url + linked.get_attribute("href"))
    assert report_page.status == 200
    keep(page, "failure")

    page.set_viewport_size({"width": 390, "height": 844})  # readable on a phone: nothing wider than it
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 392


# -- TLS reports ----------------------------------------------------------------------------------

def test_tls_pages_sum_sessions_and_show_a_report(page, dashboard_site: DashboardSite, added: Added):
    domain = dashboard_site.history.domain
    sign_in(page, dashboard_site, f"/tls?domain={domain}")
    cards = {key: page.locator(f"#tls-{key}").inner_text()
             for key in ("reports", "successful", "failed", "rate")}
    assert cards == {"reports": "2", "successful": "2\u202f100", "failed": "105", "rate": "4.76\u202f%"}
    summary = {row[1]: row[2:6] for row in rows(page, "table.tls-summary")}
    assert summary == {"sts": ["2", "1\u202f900", "100", "5.00\u202f%"],
                       "tlsa": ["1", "200", "5", "2.44\u202f%"]}
    sessions = plotted(page, "tls-sessions")
    assert [(trace["name"], trace["x"]) for trace in sessions] == [
        ("Successful", [1900, 200]), ("Failed", [100, 5])]
    assert sessions[0]["customdata"][0] == f"/tls?domain={domain}"  # a click on a bar: that domain
    failures = plotted(page, "tls-failures")
    assert dict(zip(failures[0]["x"], failures[0]["y"], strict=True)) == {
        "certificate-expired": 60, "starttls-not-supported": 40, "dane-required": 5}
    assert page.locator(".main-svg").count() >= 2
    assert len(rows(page, "table.tls-reports")) == 2
    keep(page, "tls")

    page.fill("input[name=since]", "2026-10-05")
    page.click(".filters button[type=submit]")
    page.wait_for_url(re.compile(r".*since=2026-10-05"))
    assert page.locator("#tls-successful").inner_text() == "1\u202f000"
    assert len(rows(page, "table.tls-reports")) == 1

    page.goto(dashboard_site.url + f"/tls/{added.tls['first']}")
    assert page.locator("h1").inner_text() == "TLS report from TLS Reporter A"
    assert page.locator("#report-failed").inner_text() == "105"
    assert page.locator("section.tls-policy").count() == 2
    first_policy = "section.tls-policy:first-of-type"
    by_type = {row[0]: row[1] for row in rows(page, f"{first_policy} table.tls-failure-types")}
    assert by_type == {"certificate-expired": "60", "starttls-not-supported": "40"}
    details = rows(page, f"{first_policy} table.tls-failure-details")
    assert details[0][0] == "certificate-expired" and details[0][7] == HOSTILE_DETAIL  # as text


# -- the JSON and CSV twins, and 404 pages ---------------------------------------------------------

def test_twins_answer_with_the_same_numbers_and_unknown_ids_are_404_pages(dashboard_site: DashboardSite,
                                                                          added: Added):
    domain = dashboard_site.history.domain
    with contextlib.closing(signed_in_client(dashboard_site)) as client:
        dns = client.get("/api/v1/dns", params={"domain": [domain, added.weak]}).json()
        by_domain = {item["domain"]: item for item in dns["items"]}
        assert by_domain[domain]["policy"] == "quarantine" and by_domain[domain]["spf_dns_terms"] == 1
        weak = client.get(f"/api/v1/dns/{added.weak}").json()
        assert by_domain[added.weak]["problems"] == weak["problems"] >= 4
        assert weak["spf"]["dns_terms"] == 11 and {k["state"] for k in weak["dkim"]} == {"weak", "missing"}
        page = client.get(f"/dns/{added.weak}").text
        assert f'id="dns-problems">{weak["problems"]}<' in page
        intervals = client.get(f"/api/v1/dns/{added.weak}/history").json()["intervals"]
        assert [i["records"] for i in intervals if i["name"] == f"_dmarc.{added.weak}"] == [
            [f"v=DMARC1; p=none; rua=mailto:dmarc@{added.weak}"], ["v=DMARC1; p=reject"]]
        history_csv = list(csv.DictReader(io.StringIO(
            client.get(f"/api/v1/dns/{added.weak}/history", params={"format": "csv"}).text)))
        assert len(history_csv) == len(intervals)
        dns_csv = list(csv.DictReader(io.StringIO(client.get("/api/v1/dns", params={"format": "csv"}).text)))
        assert {row["domain"]: row["problems"] for row in dns_csv}[added.weak] == str(weak["problems"])

        failures = client.get("/api/v1/failures", params={"domain": domain}).json()
        assert failures["total"] == 3
        failures_csv = list(csv.DictReader(io.StringIO(
            client.get("/api/v1/failures", params={"domain": domain, "format": "csv"}).text)))
        assert [row["id"] for row in failures_csv] == [str(item["id"]) for item in failures["items"]]
        hostile = client.get(f"/api/v1/failures/{added.failures['hostile']}").json()
        assert {"name": "Subject", "value": HOSTILE_SUBJECT} in hostile["original_headers"]
        assert len(hostile["linked_records"]) == 1 and hostile["linked_records"][0]["count"] == 3

        summary = client.get("/api/v1/tls/summary", params={"domain": domain}).json()
        assert (summary["reports"], summary["successful"], summary["failed"]) == (2, 2100, 105)
        summary_csv = list(csv.DictReader(io.StringIO(
            client.get("/api/v1/tls/summary", params={"domain": domain, "format": "csv"}).text)))
        assert {row["policy_type"]: (row["successful"], row["failed"]) for row in summary_csv} == {
            "sts": ("1900", "100"), "tlsa": ("200", "5")}
        assert client.get("/api/v1/tls", params={"domain": domain}).json()["total"] == 2
        assert client.get(f"/api/v1/tls/{added.tls['first']}").json()["failed"] == 105

        # a page's export links are the twins, with the page's filter
        page = client.get("/failures", params={"domain": domain, "since": "", "source_ip": ""}).text
        links = dict(re.findall(r'<a href="([^"]+)" type="(application/json|text/csv)"', page))
        assert set(links.values()) == {"application/json", "text/csv"}
        for link in links:
            answer = client.get(link.replace("&amp;", "&"))
            assert answer.status_code == 200, link

        html = {"Accept": "text/html"}
        for path, words in ((f"/failures/{2**31 - 1}", "there is no failure report"),
                            (f"/tls/{2**31 - 1}", "there is no TLS report"),
                            ("/dns/never-seen.example", "no DNS has been recorded")):
            answer = client.get(path, headers=html)
            assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html"), path
            assert words in answer.text and "<h1>" in answer.text
        assert "<h1>Not snapshotted</h1>" in client.get("/dns/never-seen.example", headers=html).text
