"""The state of a DKIM public key record (RFC 6376 §3.6.1, RFC 8301, RFC 8463) as DNS serves it.

Aggregate reports say a signature failed but not why; a key that is gone, revoked, unparsable
or too short to be accepted is the commonest reason, and it can be read straight from DNS. The
checks here only judge the record: they never fetch it, so a live lookup and a stored
snapshot give the same verdict.

Receivers are stricter than publishers: a record they cannot parse is as good as no key, so
anything outside the grammar is MALFORMED rather than guessed at, with two tolerances seen in
the wild and accepted by common verifiers: upper-case tag names and a bare PKCS#1
RSAPublicKey in p= instead of a SubjectPublicKeyInfo.
"""

from __future__ import annotations

import base64
import binascii
import re
import textwrap
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from ingest.dns_source import DnsAnswer, DnsOutcome, domain_name

MIN_RSA_BITS = 1024
"""RFC 8301 §3.2: verifiers MUST NOT accept shorter keys."""
RECOMMENDED_RSA_BITS = 2048
ED25519_KEY_BYTES = 32
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_WHITESPACE = re.compile(r"\s+")
_ED25519_SPKI_LENGTH = 44
"""An ed25519 key wrapped in SubjectPublicKeyInfo: 12 bytes of header, then the 32-byte key."""


class DkimKeyState(StrEnum):
    PRESENT = "present"
    REVOKED = "revoked"
    """p= is empty: the owner withdrew the key on purpose (§3.6.1)."""
    MISSING = "missing"
    MALFORMED = "malformed"
    """Published, but no verifier can use it."""
    WEAK = "weak"
    """Parsable, but RFC 8301 verifiers refuse it (RSA under 1024 bits, SHA-1 only)."""
    UNKNOWN = "unknown"
    """DNS could not say (SERVFAIL, timeout) or no answer was available: not evidence of absence."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    state: DkimKeyState
    key_type: str | None
    """The k= value as published (default "rsa"); None when no record was read."""
    bits: int | None
    """RSA modulus size, or 256 for ed25519; None when no key could be read."""
    testing: bool
    """t=y: the domain is testing DKIM, and verifiers may treat its mail as unsigned."""
    problems: tuple[str, ...] = ()
    """Plain-English findings for the UI, worst first."""


class _Malformed(ValueError):
    """The record breaks the grammar; the message says how, for the user."""


def dkim_key_name(selector: str, domain: str) -> str:
    """The name a verifier queries (RFC 6376 §3.6.2.1), in the form answers are stored under."""
    return domain_name(f"{selector}._domainkey.{domain}")


def dkim_key_from_answer(answer: DnsAnswer | None) -> DkimKey:
    """Judge a TXT answer for a key name; the failure kinds map to UNKNOWN and MISSING."""
    if answer is None:
        return _unread(DkimKeyState.UNKNOWN, "no DNS answer is available for this key")
    if answer.failed:
        return _unread(DkimKeyState.UNKNOWN,
                       f"the DNS lookup of {answer.name} failed ({answer.outcome}); the key state is unknown")
    if answer.outcome is DnsOutcome.NXDOMAIN:
        return _unread(DkimKeyState.MISSING, f"no key is published at {answer.name} (no such name)")
    if answer.outcome is DnsOutcome.NODATA:
        return _unread(DkimKeyState.MISSING, f"{answer.name} exists but publishes no TXT record")
    keys = [text for text in answer.records if _looks_like_key(text)]
    if not keys:
        return _unread(DkimKeyState.MISSING,
                       f"none of the {len(answer.records)} TXT records at {answer.name} is a DKIM key")
    if len(keys) > 1:
        return _unread(DkimKeyState.MALFORMED, f"{len(keys)} key records are published at {answer.name}; "
                       "verifiers cannot tell which to use (RFC 6376 §3.6.2.2)")
    return dkim_key_from_text(keys[0])


def dkim_key_from_text(text: str) -> DkimKey:
    """Judge one key record's text (TXT strings already joined)."""
    notes: list[str] = []
    try:
        tags = _read_tags(text, notes)
    except _Malformed as error:
        return DkimKey(DkimKeyState.MALFORMED, None, None, False, (str(error), *notes))
    key_type = _WHITESPACE.sub("", tags.get("k", "rsa")).lower() or "rsa"
    testing = "y" in _flags(tags.get("t", ""))
    try:
        _check_version(text, tags)
        _check_service(tags)
        if "p" not in tags:
            raise _Malformed("the record has no p= tag, so it holds no key")
        data = _decode(tags["p"])
        if not data:
            return DkimKey(DkimKeyState.REVOKED, key_type, None, testing,
                           ("the key is revoked (p= is empty); signatures with this selector fail", *notes))
        bits = _key_bits(key_type, data)
    except _Malformed as error:
        return DkimKey(DkimKeyState.MALFORMED, key_type, None, testing, (str(error), *notes))
    state = DkimKeyState.PRESENT
    if key_type == "rsa" and bits < MIN_RSA_BITS:
        state = DkimKeyState.WEAK
        notes.insert(0, f"RSA key of {bits} bits; receivers reject keys under {MIN_RSA_BITS} bits (RFC 8301)")
    elif key_type == "rsa" and bits < RECOMMENDED_RSA_BITS:
        notes.append(f"RSA key of {bits} bits is the minimum receivers accept; "
                     f"{RECOMMENDED_RSA_BITS} bits is recommended (RFC 8301)")
    hashes = _flags(tags.get("h", ""))
    if hashes and "sha256" not in hashes:
        state = DkimKeyState.WEAK
        notes.insert(0, f"h={tags['h']} does not allow sha256; receivers refuse SHA-1 signatures (RFC 8301)")
    if testing:
        notes.append("t=y: the domain is testing DKIM; receivers may treat its signatures as absent")
    return DkimKey(state, key_type, bits, testing, tuple(notes))


def _unread(state: DkimKeyState, problem: str) -> DkimKey:
    """A verdict reached without reading a key record."""
    return DkimKey(state, None, None, False, (problem,))


def _looks_like_key(text: str) -> bool:
    """Whether a TXT record at a key name means to be a key: v=DKIM1 or a p= tag."""
    names = []
    for term in text.split(";"):
        name, equals, value = term.partition("=")
        if equals:
            names.append((name.strip().lower(), _WHITESPACE.sub("", value).lower()))
    return ("p" in (name for name, _ in names)) or (bool(names) and names[0] == ("v", "dkim1"))


def _read_tags(text: str, notes: list[str]) -> dict[str, str]:
    """RFC 6376 §3.2 tag-list: a bad term or a repeated name invalidates the whole record."""
    tags: dict[str, str] = {}
    upper_case: list[str] = []
    for term in text.split(";"):
        if not term.strip():
            continue  # a trailing ";" is allowed; receivers also shrug off ";;"
        name, equals, value = term.partition("=")
        name = name.strip()
        if not equals or _TAG_NAME.fullmatch(name) is None:
            raise _Malformed(f"'{term.strip()}' is not a tag=value pair; verifiers reject the record")
        if name != name.lower():
            upper_case.append(name)
        if name.lower() in tags:
            raise _Malformed(f"{name.lower()}= appears twice; verifiers reject the record (RFC 6376 §3.2)")
        tags[name.lower()] = value.strip()
    if upper_case:
        notes.append(f"tag names are case-sensitive: write {', '.join(n.lower() + '=' for n in upper_case)} "
                     "in lower case; strict verifiers ignore the upper-case ones")
    return tags


def _check_version(text: str, tags: dict[str, str]) -> None:
    if "v" not in tags:
        return
    first = text.strip().split(";", 1)[0].partition("=")[0].strip().lower()
    if first != "v":
        raise _Malformed("v= must be the first tag of a key record; verifiers discard the record")
    if tags["v"] != "DKIM1":
        raise _Malformed(f"v={tags['v']} is not DKIM1; verifiers discard the record")


def _check_service(tags: dict[str, str]) -> None:
    services = _flags(tags.get("s", "*"))
    if not services & {"*", "email"}:
        raise _Malformed(f"s={tags['s']} excludes email (use s=email or s=*); verifiers ignore the key")


def _flags(value: str) -> set[str]:
    """A colon-separated list such as t= or h=, lower-cased, folding whitespace dropped."""
    return {flag for flag in _WHITESPACE.sub("", value).lower().split(":") if flag}


def _decode(value: str) -> bytes:
    """p= is base64 that DNS tools often fold with spaces; whitespace is not part of the key."""
    compact = _WHITESPACE.sub("", value)
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise _Malformed("p= is not valid base64; verifiers cannot read the key") from None


def _key_bits(key_type: str, data: bytes) -> int:
    if key_type == "ed25519":
        return _ed25519_bits(data)
    if key_type != "rsa":
        raise _Malformed(f"k={key_type} is not a key type verifiers know (rsa or ed25519)")
    try:
        key = load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        key = _pkcs1_rsa_key(data)
    if isinstance(key, ed25519.Ed25519PublicKey):
        raise _Malformed("p= holds an ed25519 key but k= says rsa; add k=ed25519 and publish the bare key")
    if not isinstance(key, rsa.RSAPublicKey):
        raise _Malformed("p= holds a public key of another type, not the RSA key k=rsa announces")
    return key.key_size


def _pkcs1_rsa_key(data: bytes) -> rsa.RSAPublicKey:
    """Some publishers put a bare RSAPublicKey (RFC 8017 §A.1.1) in p=, as RFC 6376 literally says."""
    pem = "\n".join(["-----BEGIN RSA PUBLIC KEY-----",
                     *textwrap.wrap(base64.b64encode(data).decode("ascii"), 64),
                     "-----END RSA PUBLIC KEY-----", ""])
    try:
        key = load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, rsa.RSAPublicKey):
        raise _Malformed("p= is not an RSA public key verifiers can parse")
    return key


def _ed25519_bits(data: bytes) -> int:
    """RFC 8463 §4.2: p= holds the raw 32-byte key, not a SubjectPublicKeyInfo."""
    if len(data) == _ED25519_SPKI_LENGTH:
        raise _Malformed("p= holds an ed25519 key wrapped in SubjectPublicKeyInfo; "
                         "RFC 8463 wants only the 32-byte key")
    if len(data) != ED25519_KEY_BYTES:
        raise _Malformed(f"an ed25519 key is {ED25519_KEY_BYTES} bytes, but p= holds {len(data)}")
    return 256
