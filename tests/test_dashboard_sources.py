"""The senders and forwarding pages in a real Chromium, and the API's group drill-down.

Numbers are the known history's (tests/dashboard_site.py), checked against what the API says
of the same window: by service, the domain's own server (its PTR base domain: no catalogue
entry names it), "Test Relay" (a forwarder: 200 messages forwarded, 50 whose aligned signature
broke on the way), "Test ESP" (misconfigured) and `unknown` (the spoofer, with the hostile
report's one message).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import httpx

from tests.dashboard_site import HOSTILE_FROM, HOSTILE_ORG, DashboardSite, SiteHistory, plotted, sign_in
from tests.test_dashboard_session import post_login

HOSTILE_IP = "198.51.100.7"


def _window(history: SiteHistory) -> dict[str, str]:
    return {**history.window(), "domain": history.domain}


def _url(site: DashboardSite, path: str, **params: str) -> str:
    query = "&".join(f"{key}={quote(value, safe='')}" for key, value in params.items())
    return f"{site.url}{path}?{query}" if query else site.url + path


def _number(text: str) -> int:
    return int(re.sub(r"\D", "", text) or 0)


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def _api(page: Any, href: str) -> Any:
    """A page's JSON or CSV link, fetched with the signed-in browser's session."""
    origin = re.match(r"^https?://[^/]+", page.url)
    assert origin is not None
    answer = page.request.get(origin.group(0) + href)
    assert answer.status == 200, (href, answer.status)
    return answer


def _table(page: Any, selector: str) -> dict[str, list[str]]:
    """Rows of a table by their data-key: the cells' text."""
    rows: dict[str, list[str]] = {}
    for row in page.locator(f"{selector} tbody tr").all():
        key = next(value for name in ("data-key", "data-ip", "data-domain")
                   if (value := row.get_attribute(name)) is not None)
        rows[key] = [cell.inner_text().strip() for cell in row.locator("th, td").all()]
    return rows


def test_senders_by_service_chart_table_grouping_and_filters(page, dashboard_site: DashboardSite):
    history = dashboard_site.history
    sign_in(page, dashboard_site, "/sources?" + "&".join(f"{k}={v}" for k, v in _window(history).items()))
    assert page.locator("h1").inner_text() == "Senders"
    assert page.locator("[data-group=service][aria-current]").count() == 1  # the default grouping

    # the API is the reference: the page's own JSON twin
    twin = _api(page, page.locator(".exports a[type='application/json']").get_attribute("href")).json()
    api = {item["key"]: item for item in twin["items"]}
    own, relay, esp = history.domain, "Test Relay", "Test ESP"
    assert set(api) == {own, relay, esp, "unknown"}
    per_day, days = history.per_day, history.days
    assert api[own]["messages"] == per_day["aligned"] * days == api[own]["classes"]["aligned"]
    assert api[relay]["messages"] == (per_day["forwarded"] + per_day["forwarding_failure"]) * days
    assert api[relay]["classes"]["forwarded"] == history.total("forwarded") == 200
    assert api[relay]["classes"]["forwarding_failure"] == history.total("forwarding_failure") == 50
    assert api[relay]["service_type"] == "forwarder"
    assert api[esp]["classes"]["misconfigured"] == per_day["misconfigured"] * days == 100
    assert api["unknown"]["classes"]["unauthorised"] == history.total("unauthorised") + 1  # and the hostile
    assert api["unknown"]["sources"] == 2

    # the bar chart: one trace per class, a bar per group, each a link to the group's page
    traces = {trace["name"]: trace for trace in plotted(page, "sources-groups")}
    assert page.locator("#sources-groups .main-svg").count() >= 1
    for label, name in (("Aligned", "aligned"), ("Forwarded", "forwarded"),
                        ("Forwarding failure", "forwarding_failure"), ("Misconfigured", "misconfigured"),
                        ("Unauthorised", "unauthorised")):
        drawn = dict(zip(traces[label]["y"], traces[label]["x"], strict=True))
        assert drawn == {("Unknown" if key == "unknown" else key): item["classes"][name]
                         for key, item in api.items()}, label
    links = dict(zip(traces["Aligned"]["y"], traces["Aligned"]["customdata"], strict=True))
    assert links[relay].startswith("/sources/service/Test%20Relay?")

    # the table says the same
    table = _table(page, "table.sources-table")
    assert set(table) == set(api)
    assert _number(table[relay][3]) == api[relay]["messages"] and table[relay][1] == "forwarder"
    assert table[relay][4] == "80.0\u202f%"  # the receivers' DMARC pass rate: 200 of 250
    assert "forwarded" in table[relay][5] and "forwarding failure" in table[relay][5]
    assert _number(table[esp][3]) == 100 and table[esp][4] == "0.0\u202f%"

    # grouping by address changes the URL and the table; the reporter filter keeps the grouping
    page.click("a[data-group=ip]")
    page.wait_for_url(re.compile(r".*group=ip.*"))
    assert page.locator("[data-group=ip][aria-current]").count() == 1
    by_ip = _table(page, "table.sources-table")
    assert set(by_ip) == {*history.ips.values(), HOSTILE_IP}
    assert "mx1." + history.relay in by_ip[history.ips["relay"]][1]
    assert plotted(page, "sources-groups")[0]["name"] == "Aligned"
    page.fill("input[name=org]", "Outlook.com")
    page.click(".filters button[type=submit]")
    page.wait_for_url(re.compile(r".*org=Outlook.com.*"))
    query = _query(page.url)
    assert query["group"] == ["ip"] and query["org"] == ["Outlook.com"]
    only_outlook = _table(page, "table.sources-table")
    assert list(only_outlook) == [history.ips["own"]]
    assert _number(only_outlook[history.ips["own"]][3]) == history.outlook_per_day * days
    aligned = {trace["name"]: trace for trace in plotted(page, "sources-groups")}["Aligned"]
    assert aligned["x"] == [history.outlook_per_day * days]

    # the CSV twin answers for the same view
    csv = _api(page, page.locator(".exports a[type='text/csv']").get_attribute("href"))
    assert csv.headers["content-type"].startswith("text/csv")
    assert history.ips["own"] in csv.text() and history.ips["relay"] not in csv.text()


def test_drill_down_from_a_service_to_its_records_and_a_report(page, dashboard_site: DashboardSite):
    history = dashboard_site.history
    window = _window(history)
    sign_in(page, dashboard_site, "/sources?" + "&".join(f"{k}={v}" for k, v in window.items()))
    traces = plotted(page, "sources-groups")
    failures = next(index for index, trace in enumerate(traces) if trace["name"] == "Forwarding failure")
    bar = page.locator("#sources-groups g.trace.bars").nth(failures).locator("g.point").nth(
        traces[failures]["y"].index("Test Relay")).bounding_box()
    assert bar is not None
    page.mouse.click(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)  # a bar opens its group
    page.wait_for_url(re.compile(r".*/sources/service/Test%20Relay\?.*"))
    assert _query(page.url)["domain"] == [history.domain]  # the view's state travels along
    assert page.locator("h1").inner_text() == "Service: Test Relay"
    twin = _api(page, page.locator(".exports a[type='application/json']").first.get_attribute("href")).json()
    assert twin["messages"] == int(page.locator("#card-messages").inner_text().replace("\u202f", ""))
    assert twin["judged"]["complete"] and twin["judged"]["classes"]["forwarding_failure"] == 50
    assert twin["judged"]["classes"]["forwarded"] == 200

    # who it is: the address, its PTR name (confirmed), and how the catalogue named it
    addresses = _table(page, "table.addresses-table")
    relay_ip = history.ips["relay"]
    assert list(addresses) == [relay_ip]
    assert "mx1." + history.relay in addresses[relay_ip][1] and "confirmed" in addresses[relay_ip][1]
    assert page.locator("[data-reverse-dns=confirmed]").count() == 1
    assert addresses[relay_ip][5] == "ptr" and _number(addresses[relay_ip][6]) == 250

    # what fails and why: the classes and the reason codes, as the API counts them
    classes = {row.get_attribute("data-class"): _number(row.locator("td").inner_text())
               for row in page.locator("table.class-table tbody tr").all()}
    assert classes == {name: value for name, value in twin["judged"]["classes"].items() if value}
    codes = {row.get_attribute("data-code"): _number(row.locator("td").nth(1).inner_text())
             for row in page.locator("table.causes-table tbody tr[data-code]").all()}
    assert codes == {reason["code"]: reason["messages"] for reason in twin["judged"]["reasons"]}
    assert codes  # the history's reports predate the DNS snapshots: at least `no_snapshot`
    bars = plotted(page, "source-classes")[0]
    assert dict(zip(bars["y"], bars["x"], strict=True)) == {"Forwarded": 200, "Forwarding failure": 50}

    # its records, each linking to its report, which opens
    assert page.locator("table.records-table tbody tr").count() == twin["records"] == 20
    link = page.locator("table.records-table a.report-link").first
    href = link.get_attribute("href")
    assert href == f"/reports/{twin['items'][0]['report_id']}"
    link.click()
    page.wait_for_url(re.compile(r".*/reports/\d+$"))
    assert page.locator("h1").inner_text().startswith("Report from")
    assert relay_ip in page.locator("table.records-table").inner_text()

    # the address's own page, on a phone
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(_url(dashboard_site, f"/sources/ip/{relay_ip}", **window))
    assert page.locator("h1").inner_text() == f"Address: {relay_ip}"
    facts = page.locator("dl.identity").inner_text()
    assert "Test Relay" in facts and "mx1." + history.relay in facts and "confirmed" in facts
    plotted(page, "source-classes")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # tables scroll in their wrap
    records_twin = page.locator(".exports a[type='application/json']").nth(1).get_attribute("href")
    assert records_twin.startswith("/api/v1/records?") and _query(records_twin)["source_ip"] == [relay_ip]
    assert _api(page, records_twin).json()["total"] == 20
    records_csv = page.locator(".exports a[type='text/csv']").nth(1).get_attribute("href")
    assert "limit" not in _query(records_csv)  # the export holds every record, not the page's
    assert len(_api(page, records_csv).text().strip().splitlines()) == 1 + 20


def test_forwarding_page(page, dashboard_site: DashboardSite):
    history = dashboard_site.history
    sign_in(page, dashboard_site, "/forwarding?" + "&".join(f"{k}={v}" for k, v in _window(history).items()))
    twin = _api(page, page.locator(".exports a[type='application/json']").get_attribute("href")).json()
    failures, forwarded = history.total("forwarding_failure"), history.total("forwarded")
    assert twin["totals"]["forwarding_failure"]["messages"] == failures == 50
    assert twin["totals"]["forwarded"]["messages"] == forwarded == 200
    assert _number(page.locator("#card-forwarding-failure").inner_text()) == failures
    assert _number(page.locator("#card-forwarded").inner_text()) == forwarded
    assert _number(page.locator("#card-broken").inner_text()) == failures

    days = {trace["name"]: trace for trace in plotted(page, "forwarding-days")}
    assert sum(days["Forwarding failure"]["y"]) == failures
    assert set(days["Forwarding failure"]["y"]) == {history.per_day["forwarding_failure"]}
    assert set(days["Forwarded"]["y"]) == {history.per_day["forwarded"]}
    assert len(days["Forwarding failure"]["x"]) == history.days
    forwarders = {trace["name"]: trace for trace in plotted(page, "forwarding-forwarders")}
    assert forwarders["Forwarding failure"]["y"] == ["Test Relay"]
    assert forwarders["Forwarding failure"]["x"] == [failures] and forwarders["Forwarded"]["x"] == [forwarded]
    assert page.locator(".main-svg").count() >= 2

    table = _table(page, "table.forwarders-table")
    assert list(table) == ["Test Relay"]
    assert _number(table["Test Relay"][4]) == forwarded and _number(table["Test Relay"][5]) == failures
    broken = _table(page, "table.broken-table")
    assert list(broken) == [history.domain]  # the domain's own signature, broken by the relay
    assert broken[history.domain][1] == "Test Relay" and _number(broken[history.domain][3]) == failures

    page.click("table.forwarders-table a:text-is('Test Relay')")  # to the forwarder's senders page
    page.wait_for_url(re.compile(r".*/sources/service/Test%20Relay\?.*"))
    assert page.locator("table.addresses-table tbody tr").count() == 1
    page.go_back()  # the screenshot kept is the forwarding page's
    plotted(page, "forwarding-forwarders")


def test_hostile_source_page_shows_text_escaped(page, dashboard_site: DashboardSite):
    sign_in(page, dashboard_site, f"/sources/ip/{HOSTILE_IP}?" + "&".join(
        f"{k}={v}" for k, v in dashboard_site.history.window().items()))
    row = page.locator("table.records-table tbody tr")
    assert row.count() == 1
    assert row.locator("td.clip").inner_text() == HOSTILE_FROM  # visible as text
    assert row.locator("td").nth(1).inner_text() == HOSTILE_ORG
    assert page.locator("main img").count() == 0
    assert page.locator("main script:not([type='application/json'])").count() == 0
    classes = {r.get_attribute("data-class") for r in page.locator("table.class-table tbody tr").all()}
    assert classes == {"unauthorised"}


def test_api_twins_and_the_group_endpoint(dashboard_site: DashboardSite):
    history = dashboard_site.history
    window = _window(history)
    with httpx.Client(base_url=dashboard_site.url, timeout=30) as client:
        post_login(client)
        for path, params in (("/api/v1/sources", {"group": "service"}), ("/api/v1/forwarding", {}),
                             ("/api/v1/sources/service/Test Relay", {})):
            assert client.get(path, params={**window, **params}).status_code == 200, path
            csv = client.get(path, params={**window, **params, "format": "csv"})
            assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv"), path

        # the group endpoint: one group's row of /sources, its addresses, judged classes, records
        listed = {item["key"]: item for item in client.get(
            "/api/v1/sources", params={**window, "group": "service"}).json()["items"]}
        for key in listed:
            detail = client.get(f"/api/v1/sources/service/{quote(key, safe='')}", params=window).json()
            for name in ("messages", "records", "dmarc_pass", "sources", "first_day", "last_day"):
                assert detail[name] == listed[key][name], (key, name)
            assert detail["judged"]["complete"]
            assert {name: value for name, value in detail["judged"]["classes"].items() if value} == \
                {name: value for name, value in listed[key]["classes"].items() if value}, key
            assert sum(address["messages"] for address in detail["addresses"]) == detail["messages"]
        esp = client.get("/api/v1/sources/service/Test ESP", params=window).json()
        assert esp["service_type"] == "esp" and esp["addresses"][0]["ip"] == history.ips["esp"]
        assert esp["addresses"][0]["matched_by"] == "spf_include"

        # an address: the same records as /api/v1/records?source_ip=, paged the same way
        relay_ip = history.ips["relay"]
        one = client.get(f"/api/v1/sources/ip/{relay_ip}", params={**window, "limit": 5, "offset": 5}).json()
        records = client.get("/api/v1/records", params={**window, "source_ip": relay_ip, "limit": 5,
                                                        "offset": 5}).json()
        assert one["items"] == records["items"] and one["records"] == records["total"] == 20
        assert one["sender"] == "Test Relay" and one["reverse_dns"] == "confirmed"
        assert one["ptr"] == "mx1." + history.relay
        by_domain = client.get(f"/api/v1/sources/base_domain/{history.relay}", params=window).json()
        assert by_domain["messages"] == one["messages"] == 250

        # a window without its mail is empty, not missing; no such group or address is a 404
        empty = client.get("/api/v1/sources/service/Test ESP", params={"since": "2020-01-01",
                                                                      "until": "2020-01-31"}).json()
        assert empty["messages"] == 0 and empty["addresses"] == [] and empty["items"] == []
        assert client.get("/api/v1/sources/service/Nobody Mail", params=window).status_code == 404
        assert client.get("/api/v1/sources/ip/192.0.2.250").status_code == 404
        assert client.get("/api/v1/sources/ip/not-an-address").status_code == 404
        assert client.get("/api/v1/sources/colour/blue").status_code == 422
        page = client.get("/sources/service/Nobody Mail", headers={"Accept": "text/html"})
        assert page.status_code == 404 and "<h1>Not found</h1>" in page.text
    with httpx.Client(base_url=dashboard_site.url) as anonymous:
        assert anonymous.get("/api/v1/sources/service/Test Relay").status_code == 401
