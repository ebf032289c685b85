"""A domain's DNS as Rua last recorded it, checked, and the history of every change."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.dns_models import DnsDomainPage, DnsHistoryOut, DomainDns
from app.deps import EngineDep, FormatParam, PageDep, ReadAccess, SettingsDep
from app.dns_query import checked_name, domain_dns, domain_history, watched_domains, watched_page
from app.problems import problem_responses

router = APIRouter(prefix="/api/v1/dns", tags=["dns"], responses=problem_responses(401, 403, 404, 422))

LIST_CSV_COLUMNS = ("domain", "in_reports", "configured", "checked_at", "policy", "applies_as", "rua",
                    "spf_dns_terms", "dkim_keys", "problems")
HISTORY_CSV_COLUMNS = ("name", "type", "outcome", "records", "ttl", "first_seen", "last_seen", "checks")
DomainParam = Annotated[list[str] | None, Query(
    description="Only these domains (repeat for several).", examples=["example.com"])]


@router.get("", response_model=DnsDomainPage, responses=CSV_RESPONSE)
def list_watched_domains(request: Request, engine: EngineDep, settings: SettingsDep, _: ReadAccess,
                         page: PageDep, domain: DomainParam = None, format_: FormatParam = None) -> Any:
    """Every domain Rua watches (policy domains of stored reports and RUA_DOMAINS), by name, each
    with the policy in force, its SPF lookup count and how many problems `/api/v1/dns/{domain}`
    finds; a domain never snapshotted has nulls."""
    csv = wants_csv(request, format_)
    with engine.connect() as conn:
        origins = watched_domains(conn, settings.configured_domains())
        total, items = watched_page(conn, origins, domain or (), page.limit if csv else page.json_limit(),
                                    page.offset)
    if csv:
        return csv_response("dns-domains.csv", LIST_CSV_COLUMNS,
                            ([getattr(item, column) for column in LIST_CSV_COLUMNS] for item in items))
    return DnsDomainPage(total=total, limit=page.json_limit(), offset=page.offset, items=items)


@router.get("/{domain}", response_model=DomainDns)
def read_domain_dns(domain: str, engine: EngineDep, _: ReadAccess) -> Any:
    """The domain's DMARC, SPF, DKIM and MX records as last looked up, with every problem found.

    The DMARC record shown is the one that applies (the RFC 9989 tree walk over the recorded
    answers); SPF is checked across its includes. 404 until the domain has been snapshotted
    (it is on first sight in a report, or by `rua dns snapshot DOMAIN`).
    """
    name = checked_name(domain)
    with engine.connect() as conn:
        return domain_dns(conn, name)


@router.get("/{domain}/history", response_model=DnsHistoryOut, responses=CSV_RESPONSE)
def read_domain_history(request: Request, domain: str, engine: EngineDep, _: ReadAccess,
                        format_: FormatParam = None) -> Any:
    """Every recorded answer for the domain and the names under it (_dmarc, DKIM keys, hosts),
    as validity intervals: an unchanged answer extends its interval, a change opens one.
    The CSV export has one row per interval, its records joined by newlines."""
    name = checked_name(domain)
    with engine.connect() as conn:
        history = domain_history(conn, name)
    if wants_csv(request, format_):
        return csv_response(f"dns-history-{name}.csv", HISTORY_CSV_COLUMNS, (
            [i.name, i.type, i.outcome, "\n".join(i.records), i.ttl, i.first_seen, i.last_seen, i.checks]
            for i in history.intervals))
    return history
