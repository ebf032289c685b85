"""The catalogue of known senders: the shipped data, each matcher, user files and load errors."""

from __future__ import annotations

import tomllib
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from ingest.sender_catalogue import SenderCatalogue, Service, ServiceType

FIXTURES = Path(__file__).parent / "fixtures" / "senders"
GOOGLE = "Google Workspace / Gmail"
M365 = "Microsoft 365 / Exchange Online"
RULE_KEYS = ("ptr_domains", "asns", "as_names", "spf_includes", "dkim_domains", "envelope_domains")


@pytest.fixture(scope="module")
def catalogue() -> SenderCatalogue:
    return SenderCatalogue.load()


def named(catalogue: SenderCatalogue, name: str) -> Service:
    service = catalogue.by_name(name)
    assert service is not None, f"{name!r} is not in the catalogue"
    return service


def user_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "user senders.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the shipped data -------------------------------------------------------------------------


def test_the_shipped_catalogue_has_150_or_more_services(catalogue: SenderCatalogue) -> None:
    services = list(catalogue)
    assert len(catalogue) == len(services) >= 150
    assert all(isinstance(service, Service) for service in services)
    assert len({service.name for service in services}) == len(services)


def test_every_service_type_is_used(catalogue: SenderCatalogue) -> None:
    used = Counter(service.type for service in catalogue)
    assert set(used) == set(ServiceType)


def test_every_shipped_service_has_a_rule_to_be_found_by() -> None:
    """An entry without rules could never be returned by a matcher: it would be dead weight."""
    shipped = resources.files("ingest").joinpath("data", "senders.toml").read_text(encoding="utf-8")
    entries = tomllib.loads(shipped)["service"]
    assert [entry["name"] for entry in entries if not any(entry.get(key) for key in RULE_KEYS)] == []


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Google Workspace / Gmail", ServiceType.MAILBOX_PROVIDER),
        ("Microsoft 365 / Exchange Online", ServiceType.MAILBOX_PROVIDER),
        ("Outlook.com / Hotmail", ServiceType.MAILBOX_PROVIDER),
        ("Yahoo Mail", ServiceType.MAILBOX_PROVIDER),
        ("AOL Mail", ServiceType.MAILBOX_PROVIDER),
        ("iCloud Mail", ServiceType.MAILBOX_PROVIDER),
        ("Fastmail", ServiceType.MAILBOX_PROVIDER),
        ("Zoho Mail", ServiceType.MAILBOX_PROVIDER),
        ("Proton Mail", ServiceType.MAILBOX_PROVIDER),
        ("GMX", ServiceType.MAILBOX_PROVIDER),
        ("WEB.DE", ServiceType.MAILBOX_PROVIDER),
        ("Mail.ru", ServiceType.MAILBOX_PROVIDER),
        ("Yandex Mail / Yandex 360", ServiceType.MAILBOX_PROVIDER),
        ("Amazon WorkMail", ServiceType.MAILBOX_PROVIDER),
        ("Amazon SES", ServiceType.ESP),
        ("SendGrid", ServiceType.ESP),
        ("Mailgun", ServiceType.ESP),
        ("Mailchimp", ServiceType.ESP),
        ("Mandrill (Mailchimp Transactional)", ServiceType.ESP),
        ("Postmark", ServiceType.ESP),
        ("SparkPost (Bird)", ServiceType.ESP),
        ("Brevo (Sendinblue)", ServiceType.ESP),
        ("Salesforce", ServiceType.CRM),
        ("HubSpot", ServiceType.CRM),
        ("Zendesk", ServiceType.CRM),
        ("Mimecast", ServiceType.SECURITY_GATEWAY),
        ("Proofpoint", ServiceType.SECURITY_GATEWAY),
        ("Barracuda Email Protection", ServiceType.SECURITY_GATEWAY),
        ("Cisco Secure Email (IronPort)", ServiceType.SECURITY_GATEWAY),
        ("Google Groups", ServiceType.FORWARDER),
        ("Cloudflare Email Routing", ServiceType.FORWARDER),
        ("ImprovMX", ServiceType.FORWARDER),
        ("Forward Email", ServiceType.FORWARDER),
        ("SimpleLogin (Proton Pass aliases)", ServiceType.FORWARDER),
        ("Apple Hide My Email", ServiceType.FORWARDER),
        ("Firefox Relay", ServiceType.FORWARDER),
        ("DuckDuckGo Email Protection", ServiceType.FORWARDER),
        ("Pobox", ServiceType.FORWARDER),
        ("OVHcloud", ServiceType.HOSTING),
        ("Hetzner", ServiceType.HOSTING),
        ("Amazon Web Services", ServiceType.HOSTING),
    ],
)
def test_must_have_services_are_present_with_the_right_type(
    catalogue: SenderCatalogue, name: str, kind: ServiceType
) -> None:
    assert named(catalogue, name).type is kind


# --- one matcher at a time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ptr", "name"),
    [
        ("mail-sor-f41.google.com", "Google Workspace / Gmail"),
        ("mail-db8eur05on2100.outbound.protection.outlook.com", "Microsoft 365 / Exchange Online"),
        ("a48-93.smtp-out.amazonses.com", "Amazon SES"),
        ("o1.ptr2625.sendgrid.net", "SendGrid"),
        ("m228-4.mailgun.net", "Mailgun"),
        ("mail136-3.atl71.mcdlv.net", "Mailchimp"),
        ("mail176.sea71.mandrillapp.com", "Mandrill (Mailchimp Transactional)"),
        ("mta1.mtasv.net", "Postmark"),
        ("mta-71-105.sparkpostmail.com", "SparkPost (Bird)"),
        ("us-smtp-delivery-1.mimecast.com", "Mimecast"),
        ("mx0a-00123.pphosted.com", "Proofpoint"),
        ("out1-smtp.messagingengine.com", "Fastmail"),
        ("sender4-op-o12.zoho.com", "Zoho Mail"),
        ("mout.gmx.net", "GMX"),
        ("mout.kundenserver.de", "IONOS Mail (1&1)"),
        ("smtp48.i.mail.ru", "Mail.ru"),
        ("forward500a.mail.yandex.net", "Yandex Mail / Yandex 360"),
        ("static.1.2.0.192.clients.your-server.de", "Hetzner"),
    ],
)
def test_by_ptr_matches_well_known_reverse_dns_names(catalogue: SenderCatalogue, ptr: str, name: str) -> None:
    assert catalogue.by_ptr(ptr) == named(catalogue, name)


def test_by_ptr_matches_on_label_boundaries_and_ignores_case_and_the_root_dot(
    catalogue: SenderCatalogue,
) -> None:
    google = named(catalogue, GOOGLE)
    assert catalogue.by_ptr("google.com") == google
    assert catalogue.by_ptr("MAIL-WR1-F54.Google.COM.") == google
    assert catalogue.by_ptr("evilgoogle.com") is None
    assert catalogue.by_ptr("google.com.evil.example") is None
    assert catalogue.by_ptr("com") is None


def test_by_ptr_prefers_the_longest_matching_rule(catalogue: SenderCatalogue) -> None:
    """OVH's mail relays and its rented servers share ovh.net; the relay rule is the longer one."""
    assert catalogue.by_ptr("mo4.mail-out.ovh.net") == named(catalogue, "OVHcloud Mail")
    assert catalogue.by_ptr("vps-1a2b3c4d.vps.ovh.net") == named(catalogue, "OVHcloud")
    nested = SenderCatalogue.load(FIXTURES / "user_suffixes.toml")
    assert nested.by_ptr("o1.mail.example.com") == named(nested, "Example mail pool")
    assert nested.by_ptr("mail.example.com") == named(nested, "Example mail pool")
    assert nested.by_ptr("www.example.com") == named(nested, "Example parent")
    assert nested.by_ptr("webmail.example.com") == named(nested, "Example parent")


def test_by_asn(catalogue: SenderCatalogue) -> None:
    assert catalogue.by_asn(15169) == named(catalogue, GOOGLE)
    assert catalogue.by_asn(8075) == named(catalogue, M365)
    assert catalogue.by_asn(16509) == named(catalogue, "Amazon Web Services")
    assert catalogue.by_asn(11377) == named(catalogue, "SendGrid")
    assert catalogue.by_asn(24940) == named(catalogue, "Hetzner")


def test_by_as_name_is_exact_but_case_insensitive(catalogue: SenderCatalogue) -> None:
    assert catalogue.by_as_name("GOOGLE") == named(catalogue, GOOGLE)
    assert catalogue.by_as_name("google") == named(catalogue, GOOGLE)
    assert catalogue.by_as_name("MICROSOFT-CORP-MSN-AS-BLOCK") == named(catalogue, M365)
    assert catalogue.by_as_name("Amazon-02") == named(catalogue, "Amazon Web Services")
    assert catalogue.by_as_name("hetzner online gmbh") == named(catalogue, "Hetzner")
    assert catalogue.by_as_name("GOOGLE-CLOUD-PLATFORM") == named(catalogue, "Google Cloud")
    assert catalogue.by_as_name("GOOGLE LLC") is None
    assert catalogue.by_as_name("GOOG") is None


@pytest.mark.parametrize(
    ("include", "name"),
    [
        ("_spf.google.com", "Google Workspace / Gmail"),
        ("spf.protection.outlook.com", "Microsoft 365 / Exchange Online"),
        ("amazonses.com", "Amazon SES"),
        ("sendgrid.net", "SendGrid"),
        ("mailgun.org", "Mailgun"),
        ("servers.mcsv.net", "Mailchimp"),
        ("spf.mandrillapp.com", "Mandrill (Mailchimp Transactional)"),
        ("spf.mtasv.net", "Postmark"),
        ("_spf.sparkpostmail.com", "SparkPost (Bird)"),
        ("spf.sendinblue.com", "Brevo (Sendinblue)"),
        ("eu._netblocks.mimecast.com", "Mimecast"),
        ("spf.messagingengine.com", "Fastmail"),
        ("_spf.protonmail.ch", "Proton Mail"),
        ("_spf.mx.cloudflare.net", "Cloudflare Email Routing"),
        ("SPF.Protection.Outlook.com.", "Microsoft 365 / Exchange Online"),
    ],
)
def test_by_spf_include(catalogue: SenderCatalogue, include: str, name: str) -> None:
    assert catalogue.by_spf_include(include) == named(catalogue, name)


def test_by_spf_include_matches_per_customer_names_under_a_rule_and_prefers_the_longest() -> None:
    nested = SenderCatalogue.load(FIXTURES / "user_suffixes.toml")
    assert nested.by_spf_include("u123.spf.mail.example.com") == named(nested, "Example mail pool")
    assert nested.by_spf_include("mail.example.com") == named(nested, "Example parent")
    assert nested.by_spf_include("notexample.com") is None


def test_by_dkim_domain(catalogue: SenderCatalogue) -> None:
    assert catalogue.by_dkim_domain("gmail.com") == named(catalogue, GOOGLE)
    assert catalogue.by_dkim_domain("example-com.20230601.gappssmtp.com") == named(
        catalogue, "Google Workspace / Gmail"
    )
    assert catalogue.by_dkim_domain("contoso.onmicrosoft.com") == named(catalogue, M365)
    assert catalogue.by_dkim_domain("amazonses.com") == named(catalogue, "Amazon SES")
    assert catalogue.by_dkim_domain("googlegroups.com") == named(catalogue, "Google Groups")
    assert catalogue.by_dkim_domain("pm.mtasv.net") == named(catalogue, "Postmark")
    assert catalogue.by_dkim_domain("mtasv.net") is None
    nested = SenderCatalogue.load(FIXTURES / "user_suffixes.toml")
    assert nested.by_dkim_domain("s1.dkim.example.com") == named(nested, "Example mail pool")
    assert nested.by_dkim_domain("news.example.com") == named(nested, "Example parent")


def test_by_envelope_domain(catalogue: SenderCatalogue) -> None:
    assert catalogue.by_envelope_domain("us-west-2.amazonses.com") == named(catalogue, "Amazon SES")
    assert catalogue.by_envelope_domain("sendgrid.net") == named(catalogue, "SendGrid")
    mandrill = named(catalogue, "Mandrill (Mailchimp Transactional)")
    assert catalogue.by_envelope_domain("mandrillapp.com") == mandrill
    assert catalogue.by_envelope_domain("doclist.bounces.google.com") == named(catalogue, GOOGLE)
    assert catalogue.by_envelope_domain("privaterelay.appleid.com") == named(catalogue, "Apple Hide My Email")
    assert catalogue.by_envelope_domain("appleid.com") is None
    nested = SenderCatalogue.load(FIXTURES / "user_suffixes.toml")
    assert nested.by_envelope_domain("eu.bounce.mail.example.com") == named(nested, "Example mail pool")
    assert nested.by_envelope_domain("mail.example.com") == named(nested, "Example parent")


@pytest.mark.parametrize(
    ("matcher", "value"),
    [
        ("by_ptr", "host-203-0-113-7.example.net"),
        ("by_ptr", ""),
        ("by_ptr", "."),
        ("by_ptr", "a..b"),
        ("by_asn", 64512),
        ("by_asn", 0),
        ("by_as_name", "EXAMPLE-AS"),
        ("by_as_name", ""),
        ("by_spf_include", "_spf.example.org"),
        ("by_dkim_domain", "example.org"),
        ("by_envelope_domain", "bounces.example.org"),
        ("by_name", "No Such Service"),
    ],
)
def test_unknown_inputs_give_none(catalogue: SenderCatalogue, matcher: str, value: str | int) -> None:
    assert getattr(catalogue, matcher)(value) is None


def test_spf_include_domains_lists_every_include_for_the_snapshotter(catalogue: SenderCatalogue) -> None:
    domains = catalogue.spf_include_domains()
    assert isinstance(domains, frozenset)
    assert {"_spf.google.com", "spf.protection.outlook.com", "sendgrid.net", "mailgun.org"} <= domains
    assert {"servers.mcsv.net", "amazonses.com", "spf.mandrillapp.com"} <= domains
    assert all(catalogue.by_spf_include(domain) is not None for domain in domains)
    assert all(domain == domain.lower() and not domain.endswith(".") for domain in domains)


# --- a user file -------------------------------------------------------------------------------


def test_a_user_file_adds_services_and_replaces_shipped_ones_by_name(catalogue: SenderCatalogue) -> None:
    merged = SenderCatalogue.load(FIXTURES / "user_extra.toml")
    assert len(merged) == len(catalogue) + 2

    relay = named(merged, "Example Corp relay")
    assert relay == Service("Example Corp relay", ServiceType.ESP, "https://relay.example.net")
    assert merged.by_ptr("out-7.relay.example.net") == relay
    assert merged.by_asn(64500) == relay
    assert merged.by_as_name("example-corp-as") == relay
    assert merged.by_spf_include("_spf.example.net") == relay
    assert merged.by_dkim_domain("mailer.example.net") == relay
    assert merged.by_envelope_domain("bounces.example.net") == relay
    assert "_spf.example.net" in merged.spf_include_domains()
    assert named(merged, "Partner list server").type is ServiceType.FORWARDER

    sendgrid = named(merged, "SendGrid")
    assert sendgrid.url == "https://sendgrid.example.org/our-account"
    assert merged.by_ptr("o1.ptr2625.sendgrid.net") == sendgrid
    # The override replaces the shipped rules: those it does not repeat are gone.
    assert merged.by_asn(11377) is None
    assert merged.by_spf_include("sendgrid.net") is None
    # It keeps the shipped entry's place, and everything else is untouched.
    assert [s.name for s in merged].index("SendGrid") == [s.name for s in catalogue].index("SendGrid")
    assert merged.by_ptr("mail-sor-f41.google.com") == named(catalogue, GOOGLE)


def test_a_user_override_matches_the_shipped_name_case_insensitively(tmp_path: Path) -> None:
    path = user_file(tmp_path, '[[service]]\nname = "mailgun"\ntype = "esp"\nptr_domains = ["mailgun.net"]\n')
    merged = SenderCatalogue.load(path)
    assert merged.by_name("Mailgun") == Service("mailgun", ServiceType.ESP)
    assert merged.by_spf_include("mailgun.org") is None
    assert len(merged) == len(SenderCatalogue.load())


def test_an_empty_user_file_adds_nothing(tmp_path: Path, catalogue: SenderCatalogue) -> None:
    assert len(SenderCatalogue.load(user_file(tmp_path, "# nothing yet\n"))) == len(catalogue)


# --- load errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "smtp_relay"\n',
            ["service #1 'Relay'", "field 'type'", "'smtp_relay'", "mailbox_provider", "security_gateway"],
            id="bad type",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\n',
            ["service #1 'Relay'", "missing required field 'type'"],
            id="missing type",
        ),
        pytest.param(
            '[[service]]\ntype = "esp"\nptr_domains = ["relay.example.net"]\n',
            ["service #1", "missing required field 'name'"],
            id="missing name",
        ),
        pytest.param(
            '[[service]]\nname = 42\ntype = "esp"\n',
            ["service #1", "field 'name'", "42 (int)"],
            id="name not a string",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nptr_domain = ["relay.example.net"]\n',
            ["service #1 'Relay'", "unknown key(s) 'ptr_domain'", "ptr_domains"],
            id="unknown key",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nasns = ["AS64500"]\n',
            ["service #1 'Relay'", "field 'asns'", "'AS64500' (str)"],
            id="ASN not an integer",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nasns = [true]\n',
            ["field 'asns'", "True (bool)"],
            id="ASN a boolean",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nasns = [0]\n',
            ["field 'asns'", "out of range"],
            id="ASN zero",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nasns = 64500\n',
            ["field 'asns'", "expected a list", "64500 (int)"],
            id="rule not a list",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nptr_domains = ["Relay.Example.net"]\n',
            ["field 'ptr_domains'", "'Relay.Example.net'", "lower-case"],
            id="upper-case domain",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\ndkim_domains = ["relay.example.net."]\n',
            ["field 'dkim_domains'", "trailing dot"],
            id="trailing dot",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nenvelope_domains = ["bounces example.net"]\n',
            ["field 'envelope_domains'", "not a valid domain name"],
            id="not a domain",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nspf_includes = [3]\n',
            ["field 'spf_includes'", "3 (int)"],
            id="domain not a string",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nas_names = [" RELAY-AS"]\n',
            ["field 'as_names'", "surrounding spaces"],
            id="padded AS name",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nasns = [64500, 64500]\n',
            ["field 'asns'", "64500 is listed twice"],
            id="value twice in one service",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\nurl = "relay.example.net"\n',
            ["field 'url'", "http(s) URL"],
            id="url without scheme",
        ),
        pytest.param(
            '[[service]]\nname = "Relay"\ntype = "esp"\n\n[[service]]\nname = "relay"\ntype = "esp"\n',
            ["service #2 'relay'", "already used by service #1"],
            id="name twice in one file",
        ),
        pytest.param(
            '[[services]]\nname = "Relay"\ntype = "esp"\n',
            ["unknown top-level key(s) 'services'", "[[service]]"],
            id="unknown top-level key",
        ),
        pytest.param(
            'service = "Relay"\n',
            ["'service' must be an array of tables"],
            id="service not an array",
        ),
        pytest.param(
            '[[service]]\nname = "Relay\n',
            ["not a valid UTF-8 TOML file"],
            id="not TOML",
        ),
    ],
)
def test_a_bad_user_file_is_rejected_naming_file_entry_and_field(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = user_file(tmp_path, text)
    with pytest.raises(ValueError) as raised:
        SenderCatalogue.load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message


def test_a_rule_claimed_by_a_user_service_and_a_shipped_one_names_both(tmp_path: Path) -> None:
    path = user_file(tmp_path, '[[service]]\nname = "Our relay"\ntype = "esp"\nasns = [15169]\n')
    with pytest.raises(ValueError) as raised:
        SenderCatalogue.load(path)
    message = str(raised.value)
    assert "asns value 15169" in message
    assert "'Google Workspace / Gmail' (ingest/data/senders.toml)" in message
    assert f"'Our relay' ({path})" in message


def test_a_rule_claimed_by_two_user_services_names_both(tmp_path: Path) -> None:
    path = user_file(
        tmp_path,
        '[[service]]\nname = "Relay A"\ntype = "esp"\nenvelope_domains = ["bounces.example.net"]\n'
        '[[service]]\nname = "Relay B"\ntype = "esp"\nenvelope_domains = ["bounces.example.net"]\n',
    )
    claimed_twice = r"envelope_domains value 'bounces.example.net'.*'Relay A'.*'Relay B'"
    with pytest.raises(ValueError, match=claimed_twice):
        SenderCatalogue.load(path)


def test_as_names_differing_only_in_case_are_one_claim(tmp_path: Path) -> None:
    path = user_file(tmp_path, '[[service]]\nname = "Our relay"\ntype = "esp"\nas_names = ["google"]\n')
    with pytest.raises(ValueError, match=r"as_names value 'google'.*'Google Workspace / Gmail'.*'Our relay'"):
        SenderCatalogue.load(path)


def test_a_missing_user_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SenderCatalogue.load(tmp_path / "absent.toml")
