"""DKIM key records: the DNS outcomes, the tag-list grammar and real keys of every size that matters.

Keys are generated here with `cryptography` rather than pasted in, so the tests say which
property of a key (its size, its encoding) decides the verdict. cryptography refuses to make
512-bit keys, so that one is built from a 512-bit modulus: the parser reads only the public
half, which need not belong to a usable private key.
"""

from __future__ import annotations

import base64
import functools

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ingest.dkim_key import DkimKey, DkimKeyState, dkim_key_from_answer, dkim_key_from_text, dkim_key_name
from ingest.dns_source import DnsAnswer, DnsOutcome

NAME = "sel._domainkey.example.com"
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
PKCS1 = serialization.PublicFormat.PKCS1
DER = serialization.Encoding.DER


@functools.cache
def rsa_public_key(bits: int) -> rsa.RSAPublicKey:
    if bits < 1024:
        modulus = (1 << (bits - 1)) | 0xC0FFEE | 1  # the top bit set makes it exactly `bits` long
        return rsa.RSAPublicNumbers(65537, modulus).public_key()
    return rsa.generate_private_key(65537, bits).public_key()


def rsa_p(bits: int, form: serialization.PublicFormat = SPKI) -> str:
    return base64.b64encode(rsa_public_key(bits).public_bytes(DER, form)).decode("ascii")


@functools.cache
def ed25519_key() -> ed25519.Ed25519PublicKey:
    return ed25519.Ed25519PrivateKey.generate().public_key()


def ed25519_p(raw: bool = True) -> str:
    key = ed25519_key()
    data = (key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) if raw
            else key.public_bytes(DER, SPKI))
    return base64.b64encode(data).decode("ascii")


def txt(*records: str, outcome: DnsOutcome = DnsOutcome.ANSWER) -> DnsAnswer:
    return DnsAnswer(NAME, "TXT", outcome, records)


def assert_state(key: DkimKey, state: DkimKeyState, *words: str) -> None:
    assert key.state is state, key
    for word in words:
        assert any(word in problem for problem in key.problems), (word, key.problems)


# --- the key's name ---------------------------------------------------------------------------

@pytest.mark.parametrize(("selector", "domain", "expected"), [
    ("sel", "example.com", "sel._domainkey.example.com"),
    ("Google", "Example.COM.", "google._domainkey.example.com"),
    ("s1.2024", "mail.example.org", "s1.2024._domainkey.mail.example.org"),
])
def test_dkim_key_name(selector: str, domain: str, expected: str) -> None:
    assert dkim_key_name(selector, domain) == expected


# --- DNS outcomes ----------------------------------------------------------------------------

def test_no_answer_is_unknown() -> None:
    key = dkim_key_from_answer(None)
    assert_state(key, DkimKeyState.UNKNOWN, "no DNS answer")
    assert (key.key_type, key.bits, key.testing) == (None, None, False)


@pytest.mark.parametrize("outcome", [DnsOutcome.SERVFAIL, DnsOutcome.TIMEOUT])
def test_failed_lookup_is_unknown(outcome: DnsOutcome) -> None:
    assert_state(dkim_key_from_answer(txt(outcome=outcome)), DkimKeyState.UNKNOWN, outcome.value, NAME)


@pytest.mark.parametrize("outcome", [DnsOutcome.NXDOMAIN, DnsOutcome.NODATA])
def test_absent_record_is_missing(outcome: DnsOutcome) -> None:
    key = dkim_key_from_answer(txt(outcome=outcome))
    assert_state(key, DkimKeyState.MISSING, NAME)
    assert (key.key_type, key.bits, key.testing) == (None, None, False)


def test_answer_without_a_key_record_is_missing() -> None:
    key = dkim_key_from_answer(txt("v=spf1 -all", "some-verification=abc"))
    assert_state(key, DkimKeyState.MISSING, "2 TXT records")


def test_the_one_key_among_other_records_is_used() -> None:
    key = dkim_key_from_answer(txt("v=spf1 -all", f"v=DKIM1; k=rsa; p={rsa_p(2048)}"))
    assert (key.state, key.bits) == (DkimKeyState.PRESENT, 2048)


def test_a_record_with_only_p_counts_as_a_key() -> None:
    key = dkim_key_from_answer(txt("hello", f"p={rsa_p(2048)}"))
    assert (key.state, key.key_type, key.bits) == (DkimKeyState.PRESENT, "rsa", 2048)


def test_several_key_records_are_malformed() -> None:
    key = dkim_key_from_answer(txt(f"v=DKIM1; p={rsa_p(2048)}", f"v=DKIM1; p={rsa_p(1024)}"))
    assert_state(key, DkimKeyState.MALFORMED, "2 key records")


def test_answer_is_judged_like_its_text() -> None:
    text = f"v=DKIM1; k=rsa; p={rsa_p(1024)}"
    assert dkim_key_from_answer(txt(text)) == dkim_key_from_text(text)


# --- RSA keys --------------------------------------------------------------------------------

def test_rsa_2048_is_present() -> None:
    key = dkim_key_from_text(f"v=DKIM1; k=rsa; p={rsa_p(2048)}")
    assert key == DkimKey(DkimKeyState.PRESENT, "rsa", 2048, False, ())


def test_rsa_1024_is_present_but_flagged() -> None:
    key = dkim_key_from_text(f"v=DKIM1; k=rsa; p={rsa_p(1024)}")
    assert_state(key, DkimKeyState.PRESENT, "2048")
    assert key.bits == 1024


@pytest.mark.parametrize("bits", [512, 768])
def test_short_rsa_keys_are_weak(bits: int) -> None:
    key = dkim_key_from_text(f"v=DKIM1; k=rsa; p={rsa_p(bits)}")
    assert_state(key, DkimKeyState.WEAK, f"RSA key of {bits} bits", "1024")
    assert key.bits == bits


def test_k_defaults_to_rsa() -> None:
    key = dkim_key_from_text(f"v=DKIM1; p={rsa_p(2048)}")
    assert (key.state, key.key_type) == (DkimKeyState.PRESENT, "rsa")


def test_bare_pkcs1_rsa_key_is_accepted() -> None:
    key = dkim_key_from_text(f"v=DKIM1; k=rsa; p={rsa_p(2048, PKCS1)}")
    assert (key.state, key.bits) == (DkimKeyState.PRESENT, 2048)
    assert dkim_key_from_text(f"v=DKIM1; p={rsa_p(512, PKCS1)}").state is DkimKeyState.WEAK


def test_folded_p_value_is_joined() -> None:
    p = rsa_p(2048)
    folded = " ".join(p[i:i + 50] for i in range(0, len(p), 50))
    key = dkim_key_from_text(f"v=DKIM1; k=rsa; p={folded}\t")
    assert (key.state, key.bits) == (DkimKeyState.PRESENT, 2048)
    key = dkim_key_from_text(f"v=DKIM1; k=rsa; p={p[:200]}\r\n\t{p[200:]}")
    assert key.state is DkimKeyState.PRESENT


def test_bad_base64_is_malformed() -> None:
    assert_state(dkim_key_from_text("v=DKIM1; p=MIIB!!notbase64"), DkimKeyState.MALFORMED, "base64")
    assert_state(dkim_key_from_text(f"v=DKIM1; p={rsa_p(2048)[:-3]}"), DkimKeyState.MALFORMED, "base64")


def test_base64_that_is_no_key_is_malformed() -> None:
    garbage = base64.b64encode(b"definitely not a DER public key").decode()
    assert_state(dkim_key_from_text(f"v=DKIM1; p={garbage}"), DkimKeyState.MALFORMED, "RSA")


def test_truncated_key_is_malformed() -> None:
    data = base64.b64decode(rsa_p(2048))[:-20]
    assert dkim_key_from_text(f"v=DKIM1; p={base64.b64encode(data).decode()}").state is DkimKeyState.MALFORMED


def test_other_key_type_under_k_rsa_is_malformed() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    p = base64.b64encode(ec_key.public_bytes(DER, SPKI)).decode()
    assert_state(dkim_key_from_text(f"v=DKIM1; k=rsa; p={p}"), DkimKeyState.MALFORMED, "RSA")
    assert_state(dkim_key_from_text(f"v=DKIM1; p={ed25519_p(raw=False)}"), DkimKeyState.MALFORMED,
                 "k=ed25519")


# --- ed25519 keys ----------------------------------------------------------------------------

def test_ed25519_key() -> None:
    key = dkim_key_from_text(f"v=DKIM1; k=ed25519; p={ed25519_p()}")
    assert key == DkimKey(DkimKeyState.PRESENT, "ed25519", 256, False, ())


def test_ed25519_key_type_is_case_insensitive() -> None:
    assert dkim_key_from_text(f"v=DKIM1; k=Ed25519; p={ed25519_p()}").key_type == "ed25519"


def test_ed25519_in_spki_is_malformed() -> None:
    key = dkim_key_from_text(f"v=DKIM1; k=ed25519; p={ed25519_p(raw=False)}")
    assert_state(key, DkimKeyState.MALFORMED, "32-byte")
    assert key.key_type == "ed25519"


@pytest.mark.parametrize("size", [16, 31, 33, 64])
def test_ed25519_of_the_wrong_length_is_malformed(size: int) -> None:
    p = base64.b64encode(bytes(range(size))).decode()
    assert_state(dkim_key_from_text(f"v=DKIM1; k=ed25519; p={p}"), DkimKeyState.MALFORMED, str(size))


def test_rsa_key_under_k_ed25519_is_malformed() -> None:
    assert dkim_key_from_text(f"v=DKIM1; k=ed25519; p={rsa_p(2048)}").state is DkimKeyState.MALFORMED


# --- the tag list ----------------------------------------------------------------------------

def test_empty_p_is_revoked() -> None:
    for text in ("v=DKIM1; p=", "v=DKIM1; k=rsa; p=;", "v=DKIM1; p= ", "p="):
        key = dkim_key_from_text(text)
        assert_state(key, DkimKeyState.REVOKED, "revoked")
        assert (key.key_type, key.bits) == ("rsa", None)
    assert dkim_key_from_text("v=DKIM1; k=ed25519; p=").key_type == "ed25519"


def test_revoked_key_is_seen_through_dns() -> None:
    assert dkim_key_from_answer(txt("v=DKIM1; p=")).state is DkimKeyState.REVOKED


def test_missing_p_is_malformed() -> None:
    assert_state(dkim_key_from_text("v=DKIM1; k=rsa"), DkimKeyState.MALFORMED, "p=")


def test_unknown_key_type_is_malformed() -> None:
    key = dkim_key_from_text(f"v=DKIM1; k=dsa; p={rsa_p(2048)}")
    assert_state(key, DkimKeyState.MALFORMED, "k=dsa")
    assert key.key_type == "dsa"


def test_version_must_come_first() -> None:
    assert_state(dkim_key_from_text(f"k=rsa; v=DKIM1; p={rsa_p(2048)}"), DkimKeyState.MALFORMED, "first")


@pytest.mark.parametrize("version", ["DKIM2", "dkim1", "DKIM"])
def test_version_must_be_dkim1(version: str) -> None:
    assert_state(dkim_key_from_text(f"v={version}; p={rsa_p(2048)}"), DkimKeyState.MALFORMED, version)


def test_version_is_optional() -> None:
    assert dkim_key_from_text(f"k=rsa; p={rsa_p(2048)}").state is DkimKeyState.PRESENT


def test_duplicate_tag_is_malformed() -> None:
    assert_state(dkim_key_from_text(f"v=DKIM1; p={rsa_p(2048)}; p={rsa_p(2048)}"), DkimKeyState.MALFORMED,
                 "twice")


@pytest.mark.parametrize("text", ["v=DKIM1; garbage; p=abc", "v=DKIM1; =x; p=abc", "v=DKIM1; 9k=rsa; p=abc"])
def test_tag_list_syntax_errors_are_malformed(text: str) -> None:
    key = dkim_key_from_text(text)
    assert_state(key, DkimKeyState.MALFORMED, "tag=value")
    assert key.key_type is None


def test_spaces_and_trailing_semicolon_are_tolerated() -> None:
    key = dkim_key_from_text(f" v = DKIM1 ;  k = rsa ; p = {rsa_p(2048)} ; ")
    assert (key.state, key.bits, key.problems) == (DkimKeyState.PRESENT, 2048, ())


def test_upper_case_tag_names_are_tolerated_with_a_note() -> None:
    key = dkim_key_from_text(f"V=DKIM1; K=rsa; P={rsa_p(2048)}")
    assert_state(key, DkimKeyState.PRESENT, "case-sensitive")
    assert key.bits == 2048


def test_testing_flag() -> None:
    key = dkim_key_from_text(f"v=DKIM1; t=y; p={rsa_p(2048)}")
    assert key.testing and key.state is DkimKeyState.PRESENT
    assert dkim_key_from_text(f"v=DKIM1; t=s:y; p={rsa_p(2048)}").testing
    assert not dkim_key_from_text(f"v=DKIM1; t=s; p={rsa_p(2048)}").testing
    assert dkim_key_from_text("v=DKIM1; t=y; p=").testing


def test_sha1_only_hash_is_weak() -> None:
    assert_state(dkim_key_from_text(f"v=DKIM1; h=sha1; p={rsa_p(2048)}"), DkimKeyState.WEAK, "SHA-1")
    assert dkim_key_from_text(f"v=DKIM1; h=sha1:sha256; p={rsa_p(2048)}").state is DkimKeyState.PRESENT
    assert dkim_key_from_text(f"v=DKIM1; h=sha256; p={rsa_p(2048)}").state is DkimKeyState.PRESENT


@pytest.mark.parametrize(("services", "state"), [
    ("*", DkimKeyState.PRESENT), ("email", DkimKeyState.PRESENT), ("email:other", DkimKeyState.PRESENT),
    ("other", DkimKeyState.MALFORMED),
])
def test_service_type(services: str, state: DkimKeyState) -> None:
    assert dkim_key_from_text(f"v=DKIM1; s={services}; p={rsa_p(2048)}").state is state


def test_notes_and_other_tags_are_ignored() -> None:
    text = f"v=DKIM1; n=rotated 2024, see ticket 42; k=rsa; p={rsa_p(2048)}; x=future"
    assert dkim_key_from_text(text).state is DkimKeyState.PRESENT


# --- real-world shapes -----------------------------------------------------------------------

def test_google_workspace_style_record() -> None:
    key = dkim_key_from_answer(txt(f"v=DKIM1; k=rsa; p={rsa_p(2048)}"))
    assert (key.state, key.key_type, key.bits, key.testing, key.problems) == (
        DkimKeyState.PRESENT, "rsa", 2048, False, ())


def test_microsoft_365_style_record_with_trailing_semicolon() -> None:
    key = dkim_key_from_text(f"v=DKIM1; k=rsa; p={rsa_p(1024)};")
    assert (key.state, key.bits) == (DkimKeyState.PRESENT, 1024)


def test_mailchimp_style_record_without_version() -> None:
    assert dkim_key_from_text(f"k=rsa; t=s; p={rsa_p(2048)}").state is DkimKeyState.PRESENT


def test_key_is_an_immutable_value() -> None:
    key = dkim_key_from_text(f"v=DKIM1; p={rsa_p(2048)}")
    assert hash(key) == hash(dkim_key_from_text(f"v=DKIM1; p={rsa_p(2048)}"))
    with pytest.raises(AttributeError):
        key.bits = 4096  # type: ignore[misc]
