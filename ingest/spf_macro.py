"""SPF macro strings (RFC 7208 §7): checked once when a record is parsed, expanded later.

Parsing and expanding are apart because RFC 7208 §4.6 wants every syntax error in a record
found before any term is evaluated, while expansion needs the evaluation's state (the current
domain, the validated client name).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from urllib.parse import quote

DOMAIN_LETTERS = frozenset("slodipvh")
EXPLANATION_LETTERS = DOMAIN_LETTERS | frozenset("crt")
"""c, r and t expand only in explanation text (§7.3)."""

_DEFAULT_DELIMITER = "."
_MACRO_BODY = re.compile(r"([a-zA-Z])([0-9]*)([rR]?)([.\-+,/_=]*)")
_ESCAPES = {"%": "%", "_": " ", "-": "%20"}


class MacroSyntaxError(ValueError):
    """A macro string that RFC 7208's grammar does not allow; the message says where."""


@dataclass(frozen=True, slots=True)
class Macro:
    """One `%{...}` expansion: letter, then how to cut its value up."""

    letter: str
    keep: int | None
    """How many right-hand parts to keep; None keeps all."""
    reverse: bool
    delimiters: str
    url_escape: bool
    """Set by an upper-case letter: the value is URL-escaped after transformation (§7.3)."""


@dataclass(frozen=True, slots=True)
class MacroString:
    text: str
    parts: tuple[str | Macro, ...]
    ends_in_macro: bool
    """Whether the text ends with a macro-expand (`%{..}`, `%%`, `%_` or `%-`), which is one of
    the two ways a domain-spec may end (§7.1)."""

    @property
    def literal(self) -> str | None:
        """The expanded text when it holds no macro letter, so it names one fixed domain (the
        escapes %%, %_ and %- are already expanded in `parts`)."""
        return "".join(self.parts) if all(isinstance(part, str) for part in self.parts) else None  # type: ignore[arg-type]

    @property
    def literal_tail(self) -> str:
        """The literal text after the last macro-expand: where a domain-spec's top label is."""
        if self.ends_in_macro or not self.parts or not isinstance(self.parts[-1], str):
            return ""
        return self.parts[-1]


@dataclass(frozen=True, slots=True)
class MacroValues:
    """What the macro letters stand for during one evaluation (§7.2)."""

    sender: str
    local_part: str
    sender_domain: str
    domain: str
    ip: IPv4Address | IPv6Address
    helo: str
    receiver: str
    timestamp: int
    validated_name: Callable[[str], str]
    """Given the current domain, the client's validated host name or "unknown" (%{p}); a
    callable because finding it costs DNS queries that most records never need."""


def parse_macro_string(text: str, *, explanation: bool = False) -> MacroString:
    """Check `text` against §7.1's grammar; `explanation` allows spaces and the letters c r t."""
    letters = EXPLANATION_LETTERS if explanation else DOMAIN_LETTERS
    parts: list[str | Macro] = []
    literal: list[str] = []
    ends_in_macro = False
    position = 0
    while position < len(text):
        char = text[position]
        ends_in_macro = char == "%"
        if char != "%":
            if not ("!" <= char <= "~" or (explanation and char == " ")):
                raise MacroSyntaxError(f"character {char!r} not allowed at {position} in {text!r}")
            literal.append(char)
            position += 1
            continue
        following = text[position + 1: position + 2]
        if following in _ESCAPES:
            literal.append(_ESCAPES[following])
            position += 2
            continue
        if following != "{":
            raise MacroSyntaxError(f"'%' must be followed by '{{', '%', '_' or '-' in {text!r}")
        close = text.find("}", position + 2)
        body = _MACRO_BODY.fullmatch(text, position + 2, close) if close > 0 else None
        if body is None:
            raise MacroSyntaxError(f"malformed macro at {position} in {text!r}")
        if body[1].lower() not in letters:
            raise MacroSyntaxError(f"macro letter {body[1]!r} not allowed here in {text!r}")
        if body[2] and int(body[2]) == 0:
            raise MacroSyntaxError(f"macro keeps zero parts in {text!r}")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(Macro(letter=body[1].lower(), keep=int(body[2]) if body[2] else None,
                           reverse=bool(body[3]), delimiters=body[4] or _DEFAULT_DELIMITER,
                           url_escape=body[1].isupper()))
        position = close + 1
    if literal:
        parts.append("".join(literal))
    return MacroString(text, tuple(parts), ends_in_macro)


def expand(macro_string: MacroString, values: MacroValues) -> str:
    return "".join(part if isinstance(part, str) else _expand_one(part, values)
                   for part in macro_string.parts)


def _expand_one(macro: Macro, values: MacroValues) -> str:
    pieces = re.split("[" + re.escape(macro.delimiters) + "]", letter_value(macro.letter, values))
    if macro.reverse:
        pieces.reverse()
    if macro.keep is not None:
        pieces = pieces[-macro.keep:]
    text = ".".join(pieces)
    return quote(text, safe="") if macro.url_escape else text


def letter_value(letter: str, values: MacroValues) -> str:
    match letter:
        case "s":
            return values.sender
        case "l":
            return values.local_part
        case "o":
            return values.sender_domain
        case "d":
            return values.domain
        case "i":
            return dotted_address(values.ip)
        case "p":
            return values.validated_name(values.domain)
        case "v":
            return "in-addr" if values.ip.version == 4 else "ip6"
        case "h":
            return values.helo
        case "c":
            return str(values.ip)
        case "r":
            return values.receiver
        case "t":
            return str(values.timestamp)
    raise ValueError(f"unknown macro letter {letter!r}")


def dotted_address(ip: IPv4Address | IPv6Address) -> str:
    """%{i}: IPv4 as is, IPv6 as 32 dot-separated nibbles (§7.3), the form reverse DNS uses."""
    if ip.version == 4:
        return str(ip)
    return ".".join(ip.exploded.replace(":", ""))


def reverse_name(ip: IPv4Address | IPv6Address) -> str:
    """The in-addr.arpa / ip6.arpa name that holds the address's PTR records."""
    labels = dotted_address(ip).split(".")
    return ".".join(reversed(labels)) + (".in-addr.arpa" if ip.version == 4 else ".ip6.arpa")
