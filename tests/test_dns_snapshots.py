"""DNS snapshots taken from a real authoritative server (NSD), zones changed over time, and
reports judged against the records of their own dates, on both databases."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from app.models import RecordVerdict, ReportClassTotals, table_of
from ingest.dns_resolver import LiveResolver
from ingest.dns_snapshot_store import domain_intervals
from ingest.dns_source import DnsOutcome
from ingest.dns_watch import Targets, due_targets, snapshot_and_mark, watch_targets
from ingest.recompute import recompute
from tests import samples
from tests.conftest import count_rows
from tests.dns_server import txt, unreachable_nameserver
from tests.preloaded_server import run_rua_text

DAY = timedelta(days=1)
T1 = datetime(2026, 3, 1, tzinfo=UTC)
T2 = datetime(2026, 4, 1, tzinfo=UTC)
T3 = datetime(2026, 5, 1, tzinfo=UTC)
OWN_IP, ESP_IP, ESP6_IP, SPOOF_IP = "192.0.2.25", "198.51.100.7", "2001:db8:e5::7", "203.0.113.66"


@cache
def key_record() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def zone_lines(domain: str, *, esp: bool, policy: str, key: str | None) -> list[str]:
    include = f" include:spf.esp.{domain}" if esp else ""
    lines = [
        txt("@", f"v=spf1 ip4:{OWN_IP} mx{include} -all"),
        "@ IN MX 10 mail",
        f"mail IN A {OWN_IP}",
        txt("_dmarc", f"v=DMARC1; p={policy}; rua=mailto:dmarc@{domain}"),
        txt("spf.esp", "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8:e5::/48 -all"),
    ]
    if key:
        lines.append(txt("s1._domainkey", key))
    return lines


def snapshot(engine, nameserver: str, domain: str, at: datetime, keys=frozenset()):
    live = LiveResolver([nameserver], timeout=0.3, lifetime=0.6)
    from ingest.dns_snapshot_taker import take_snapshots
    return take_snapshots(engine, live, [domain], keys, at=at)


def ingest_report(pipeline, tmp_path: Path, domain: str, begin: datetime, records, name: str,
                  p: str = "none", extra_policy: str = "") -> int:
    xml = samples.aggregate_xml(records, report_id=name, domain=domain, begin=str(int(begin.timestamp())),
                                end=str(int((begin + DAY).timestamp()) - 1), p=p, extra_policy=extra_policy)
    path = tmp_path / f"{name}.xml"
    path.write_bytes(xml)
    return pipeline.ingest_path(path).reports[0].report_id


def verdicts(engine, report_id: int) -> list:
    table = table_of(RecordVerdict)
    with engine.connect() as conn:
        return list(conn.execute(select(table).where(table.c.report_id == report_id)
                                 .order_by(table.c.record_no)))


def esp_record(domain: str, spf: str, ip: str = ESP_IP) -> samples.Rec:
    return samples.Rec(source_ip=ip, header_from=domain, envelope_from=domain, dkim="fail",
                       spf=spf, dkim_results=[], spf_results=[(domain, "mfrom", spf)])


def test_zone_changes_become_intervals_and_reports_are_judged_by_their_dates(
        engine, pipeline, nsd, tmp_path):
    domain = nsd.new_zone_name()
    keys = {(domain, "s1")}
    # March: own server only, p=none, key s1
    nsd.set_zone(domain, zone_lines(domain, esp=False, policy="none", key=key_record()))
    nsd.reload()
    snapshot(engine, nsd.nameserver, domain, T1, keys)
    snapshot(engine, nsd.nameserver, domain, T1 + DAY, keys)  # unchanged: no new interval
    # April: the ESP is included, the policy tightened, the key rotated away
    nsd.set_zone(domain, zone_lines(domain, esp=True, policy="reject", key=None))
    nsd.reload()
    run = snapshot(engine, nsd.nameserver, domain, T2, keys)
    assert (domain, "TXT") in run.changed and (f"_dmarc.{domain}", "TXT") in run.changed
    assert run.changed_keys == {(domain, "s1")}
    # May: the ESP is removed again
    nsd.set_zone(domain, zone_lines(domain, esp=False, policy="reject", key=None))
    nsd.reload()
    snapshot(engine, nsd.nameserver, domain, T3, keys)

    with engine.connect() as conn:
        intervals = domain_intervals(conn, domain)
    by_key: dict = {}
    for interval in intervals:
        by_key.setdefault((interval.name, interval.rdtype), []).append(interval)
    spf_history = by_key[(domain, "TXT")]
    assert [("include:" in i.records[0], i.first_seen) for i in spf_history] == [
        (False, T1), (True, T2), (False, T3)]
    assert spf_history[0].checks == 2 and spf_history[0].last_seen == T1 + DAY
    assert [i.records for i in by_key[(f"_dmarc.{domain}", "TXT")]] == [
        (f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}",),
        (f"v=DMARC1; p=reject; rua=mailto:dmarc@{domain}",)]
    assert [i.outcome for i in by_key[(f"s1._domainkey.{domain}", "TXT")]] == [
        DnsOutcome.ANSWER, DnsOutcome.NXDOMAIN]

    signed = samples.Rec(source_ip=SPOOF_IP, header_from=domain, envelope_from=domain, dkim="fail",
                         spf="fail", dkim_results=[(domain, "s1", "fail")],
                         spf_results=[(domain, "mfrom", "fail")])
    march = ingest_report(pipeline, tmp_path, domain, T1 + 5 * DAY,
                          [esp_record(domain, "fail"), signed], "march")
    april = ingest_report(pipeline, tmp_path, domain, T2 + 5 * DAY,
                          [esp_record(domain, "pass"), esp_record(domain, "pass", ESP6_IP), signed], "april",
                          p="none")
    may = ingest_report(pipeline, tmp_path, domain, T3 + 5 * DAY, [esp_record(domain, "fail")], "may",
                        p="reject")
    stats = recompute(engine)
    assert (stats.reports, stats.records) == (3, 6)

    [esp_march, signed_march] = verdicts(engine, march)
    assert esp_march.spf_result == "fail" and esp_march.record_class == "unauthorised"
    assert signed_march.dkim[0]["key_state"] == "present"
    assert "dkim_key_changed_since" in signed_march.reasons
    [esp_april, esp6_april, signed_april] = verdicts(engine, april)
    assert (esp_april.spf_result, esp_april.dmarc, esp_april.record_class) == ("pass", "pass", "aligned")
    assert esp6_april.spf_result == "pass"  # the include's ip6 range, from an IPv6 source
    assert signed_april.dkim[0]["key_state"] == "missing" and "dkim_key_missing" in signed_april.reasons
    assert "policy_differs_from_dns" in signed_april.reasons  # the report says none, DNS said reject
    [esp_may] = verdicts(engine, may)
    assert esp_may.spf_result == "fail" and "policy_differs_from_dns" not in esp_may.reasons
    with engine.connect() as conn:
        totals = {(row.report_id, row.record_class): row.messages for row in conn.execute(
            select(table_of(ReportClassTotals)))}
    assert totals[(april, "aligned")] == 2


def test_unchanged_snapshots_do_not_grow_storage(engine, nsd):
    domain = nsd.new_zone_name()
    nsd.set_zone(domain, zone_lines(domain, esp=True, policy="none", key=key_record()))
    nsd.reload()
    snapshot(engine, nsd.nameserver, domain, T1, {(domain, "s1")})
    rows = count_rows(engine, "dns_snapshot")
    for hours in range(1, 6):
        run = snapshot(engine, nsd.nameserver, domain, T1 + timedelta(hours=hours), {(domain, "s1")})
        assert run.changed == set()
    assert count_rows(engine, "dns_snapshot") == rows
    names = {interval.name for interval in _intervals(engine, domain)}
    # the SPF include's target and the mx host were followed too
    assert {domain, f"_dmarc.{domain}", f"spf.esp.{domain}", f"mail.{domain}",
            f"s1._domainkey.{domain}"} <= names


def _intervals(engine, domain):
    with engine.connect() as conn:
        return domain_intervals(conn, domain)


def test_timeouts_and_servfail_are_recorded_as_such_and_give_temperror(engine, pipeline, nsd, tmp_path):
    domain = nsd.new_zone_name()
    nsd.set_zone(domain, zone_lines(domain, esp=False, policy="reject", key=None))
    nsd.reload()
    snapshot(engine, nsd.nameserver, domain, T1)
    run = snapshot(engine, unreachable_nameserver(), domain, T2)  # the server unreachable for a day
    assert run.failures and all("timeout" in failure for failure in run.failures)
    snapshot(engine, nsd.nameserver, domain, T2 + DAY)
    outcomes = [i.outcome for i in _intervals(engine, domain) if (i.name, i.rdtype) == (domain, "TXT")]
    assert outcomes == [DnsOutcome.ANSWER, DnsOutcome.TIMEOUT, DnsOutcome.ANSWER]  # never "no record"

    broken = nsd.new_zone_name()
    nsd.broken_zone(broken)
    nsd.reload()
    snapshot(engine, nsd.nameserver, broken, T1)
    assert {i.outcome for i in _intervals(engine, broken) if i.name == broken} == {DnsOutcome.SERVFAIL}

    spoof = samples.Rec(source_ip=SPOOF_IP, header_from=domain, envelope_from=domain, dkim="fail",
                        spf="temperror", dkim_results=[], spf_results=[(domain, "mfrom", "temperror")])
    # judged at the middle of its range, T2 + 3 hours: inside the day the lookups timed out
    during = ingest_report(pipeline, tmp_path, domain, T2 - timedelta(hours=9), [spoof], "during")
    after = ingest_report(pipeline, tmp_path, domain, T2 + 3 * DAY,
                          [esp_record(domain, "fail", SPOOF_IP)], "after")
    recompute(engine)
    [judged_during] = verdicts(engine, during)
    assert judged_during.spf_result == "temperror" and judged_during.dmarc == "temperror"
    assert "dns_temperror" in judged_during.reasons
    [judged_after] = verdicts(engine, after)
    assert (judged_after.spf_result, judged_after.dmarc) == ("fail", "fail")


def test_tree_walk_subdomain_and_np_policies(engine, pipeline, nsd, tmp_path):
    """A DMARCbis report for a subdomain: the org domain comes from the tree walk over the
    snapshotted _dmarc records (psd=n at the zone apex), strict and relaxed alignment apply."""
    domain = nsd.new_zone_name()
    nsd.set_zone(domain, [*zone_lines(domain, esp=False, policy="reject", key=key_record()),
                          "sub IN A 192.0.2.99", txt("s1._domainkey.mail", key_record())])
    nsd.reload()
    author = f"deep.sub.{domain}"
    watched = watch_targets(engine, [author])
    snapshot_and_mark(engine, LiveResolver([nsd.nameserver], timeout=0.3, lifetime=0.6),
                      Targets(domains=watched.domains, dkim_keys={(f"mail.{domain}", "s1")}))
    names = {interval.name for interval in _intervals(engine, domain)}
    assert {f"_dmarc.{author}", f"_dmarc.sub.{domain}", f"_dmarc.{domain}"} <= names
    nx = [i for i in _intervals(engine, domain) if i.name == author and i.rdtype == "A"]
    assert nx and nx[0].outcome is DnsOutcome.NXDOMAIN  # the author domain does not exist: np applies

    signed = samples.Rec(source_ip=SPOOF_IP, header_from=author, envelope_from=f"bounce.other-{domain}",
                         dkim="pass", spf="fail", dkim_results=[(f"mail.{domain}", "s1", "pass")],
                         spf_results=[(f"bounce.other-{domain}", "mfrom", "pass")])
    walk = '<discovery_method>treewalk</discovery_method>'
    relaxed = ingest_report(pipeline, tmp_path, domain, T1, [signed], "relaxed", extra_policy=walk)
    recompute(engine)
    [verdict] = verdicts(engine, relaxed)
    assert verdict.discovery_method == "treewalk" and verdict.org_domain == domain
    assert verdict.dkim_aligned and verdict.dmarc == "pass"
    assert verdict.dkim[0]["key_state"] == "present"


def test_first_sight_snapshots_only_what_was_never_looked_up(engine, pipeline, nsd, tmp_path):
    domain = nsd.new_zone_name()
    nsd.set_zone(domain, zone_lines(domain, esp=False, policy="none", key=key_record()))
    nsd.reload()
    ingest_report(pipeline, tmp_path, domain, T1, [samples.Rec(
        source_ip=OWN_IP, header_from=domain, envelope_from=domain, dkim_results=[(domain, "s1", "pass")],
        spf_results=[(domain, "mfrom", "pass")])], "first")
    targets = watch_targets(engine, due_reports_only=True)
    assert domain in targets.domains and (domain, "s1") in targets.dkim_keys
    due = due_targets(engine, targets, timedelta(days=36500))
    assert domain in due.domains
    snapshot_and_mark(engine, LiveResolver([nsd.nameserver], timeout=0.3, lifetime=0.6), due)
    again = due_targets(engine, targets, timedelta(days=36500))
    assert domain not in again.domains and (domain, "s1") not in again.dkim_keys
    recompute(engine)
    [verdict] = verdicts(engine, _only_report(engine, domain))
    assert verdict.record_class == "aligned" and "no_snapshot" in verdict.reasons  # report predates it


def _only_report(engine, domain):
    from app.models import Report
    table = table_of(Report)
    with engine.connect() as conn:
        return conn.execute(select(table.c.id).where(table.c.policy_domain == domain)).scalar_one()


def rua(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("RUA_")}
    environment.update(env)
    return run_rua_text(list(args), environment, timeout=60)


@pytest.mark.parametrize(("ip", "mail_from", "word"), [
    (OWN_IP, "user@{d}", "pass"), (ESP_IP, "user@{d}", "pass"), (SPOOF_IP, "user@{d}", "fail"),
    (ESP6_IP, "user@{d}", "pass"), (OWN_IP, "user@nothing.{d}", "none")])
def test_spf_check_command(nsd, ip, mail_from, word):
    domain = nsd.new_zone_name()
    nsd.set_zone(domain, zone_lines(domain, esp=True, policy="none", key=None))
    nsd.reload()
    result = rua("spf", "check", "--ip", ip, "--mail-from", mail_from.format(d=domain),
                 env={"RUA_DNS_NAMESERVERS": nsd.nameserver, "RUA_DNS_TIMEOUT": "0.5"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == word, result.stdout


def test_spf_check_command_timeout_is_temperror():
    result = rua("spf", "check", "--ip", OWN_IP, "--mail-from", "a@example.test",
                 env={"RUA_DNS_NAMESERVERS": unreachable_nameserver(), "RUA_DNS_TIMEOUT": "0.2",
                      "RUA_DNS_LIFETIME": "0.4"})
    assert result.stdout.split()[0] == "temperror", result.stdout + result.stderr


def test_dns_commands_and_api(database_url, live_server, nsd, tmp_path):
    domain = nsd.new_zone_name()
    lines = zone_lines(domain, esp=True, policy="none", key=key_record())
    nsd.set_zone(domain, [*lines, txt("weak._domainkey", "v=DKIM1; p=")])
    nsd.reload()
    env = {"RUA_DATABASE_URL": database_url, "RUA_DATA_DIR": str(live_server.data_dir),
           "RUA_DNS_NAMESERVERS": nsd.nameserver, "RUA_DNS_TIMEOUT": "0.5"}
    snap = rua("dns", "snapshot", domain, env=env)
    assert snap.returncode == 0, snap.stderr
    assert "answers recorded" in snap.stdout
    history = rua("dns", "history", domain, "--json", env=env)
    rows = json.loads(history.stdout)
    assert {(row["name"], row["type"]) for row in rows} >= {(domain, "TXT"), (f"_dmarc.{domain}", "TXT")}

    client = live_server.client("read")
    state = client.get(f"/api/v1/dns/{domain}").json()
    assert state["dmarc"]["record"].startswith("v=DMARC1; p=none")
    assert state["dmarc"]["applies_as"] == "domain"
    assert "monitoring_only" in {problem["code"] for problem in state["dmarc"]["problems"]}
    assert state["spf"]["includes"] == [f"spf.esp.{domain}"] and state["spf"]["dns_terms"] == 2
    assert state["mx"] == [f"10 mail.{domain}"]
    listed = client.get(f"/api/v1/dns/{domain}/history").json()
    assert {interval["name"] for interval in listed["intervals"]} >= {domain, f"_dmarc.{domain}"}
    missing = client.get("/api/v1/dns/never-seen.test")
    assert missing.status_code == 404 and missing.json()["type"].endswith("not-snapshotted")
    assert client.get("/api/v1/dns/a%20b.test").status_code == 422

    # records judged by `rua align` in worker processes, then read back through the API
    from ingest.limits import UnpackLimits
    from ingest.pipeline import IngestPipeline
    pipeline = IngestPipeline(live_server.engine, live_server.data_dir, UnpackLimits())
    begin = datetime.now(UTC) - 2 * DAY
    ingest_report(pipeline, tmp_path, domain, begin, [
        samples.Rec(source_ip=OWN_IP, count="7", header_from=domain, envelope_from=domain,
                    dkim_results=[(domain, "s1", "pass")], spf_results=[(domain, "mfrom", "pass")]),
        samples.Rec(source_ip=SPOOF_IP, count="3", header_from=domain, envelope_from=domain, dkim="fail",
                    spf="fail", dkim_results=[], spf_results=[(domain, "mfrom", "fail")])], "api")
    assert client.get("/api/v1/summary", params={"domain": domain}).json()["classes"]["pending"] == 10
    aligned = rua("align", "--workers", "2", env=env)
    assert aligned.returncode == 0, aligned.stderr
    assert aligned.stdout.startswith("2 records of 1 reports judged")
    records = client.get("/api/v1/records", params={"domain": domain}).json()["items"]
    verdicts = {item["source_ip"]: item["verdict"] for item in records}
    assert verdicts[OWN_IP]["class"] == "aligned" and verdicts[OWN_IP]["dkim"][0]["key_state"] == "present"
    assert verdicts[SPOOF_IP]["class"] == "unauthorised" and verdicts[SPOOF_IP]["spf_result"] == "fail"
    spoofed = client.get("/api/v1/records", params={"domain": domain, "class": "unauthorised"}).json()
    assert [item["source_ip"] for item in spoofed["items"]] == [SPOOF_IP]
    summary = client.get("/api/v1/summary", params={"domain": domain}).json()
    assert summary["classes"] == {"aligned": 7, "forwarded": 0, "forwarding_failure": 0, "misconfigured": 0,
                                  "unauthorised": 3, "pending": 0}
    assert sum(day["classes"]["unauthorised"] for day in summary["days"]) == 3
    narrowed = client.get("/api/v1/summary", params={"domain": domain, "source_ip": SPOOF_IP}).json()
    assert narrowed["classes"]["unauthorised"] == 3 and narrowed["classes"]["aligned"] == 0
    csv = client.get("/api/v1/records", params={"domain": domain, "format": "csv"}).text
    assert "class,verdict_dmarc,verdict_reasons" in csv.splitlines()[0]
