"""Synthetic aggregate reports for the benchmarks.

The records vary the way real ones do (IPv4 and IPv6 sources, several DKIM signatures and SPF
results per row, mixed dispositions), so that throughput is not flattered by a tiny, repetitive
document that compresses and parses unrealistically well.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import BinaryIO

_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <version>1.0</version>
  <report_metadata>
    <org_name>bench.example</org_name>
    <email>noreply-dmarc@bench.example</email>
    <report_id>bench-{records}-{seed}</report_id>
    <date_range>
      <begin>1700000000</begin>
      <end>1700086399</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>example.com</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>quarantine</p>
    <sp>none</sp>
    <pct>100</pct>
    <fo>1</fo>
  </policy_published>
"""

_RECORD = """  <record>
    <row>
      <source_ip>{ip}</source_ip>
      <count>{count}</count>
      <policy_evaluated>
        <disposition>{disposition}</disposition>
        <dkim>{dkim_eval}</dkim>
        <spf>{spf_eval}</spf>{reason}
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>{header_from}</header_from>
      <envelope_from>{envelope_from}</envelope_from>
    </identifiers>
    <auth_results>
{dkim}{spf}    </auth_results>
  </record>
"""

_DKIM = """      <dkim>
        <domain>{domain}</domain>
        <selector>{selector}</selector>
        <result>{result}</result>
      </dkim>
"""

_SPF = """      <spf>
        <domain>{domain}</domain>
        <scope>{scope}</scope>
        <result>{result}</result>
      </spf>
"""

_SENDER_DOMAINS = ["example.com", "mail.example.com", "news.example.com", "esp-mailer.net",
                   "bounce.crm.example.org", "forwarder.example.net"]
_SELECTORS = ["s1", "s2", "google", "k1", "selector1", "mandrill", "pm"]
_DKIM_RESULTS = ["pass", "pass", "pass", "fail", "neutral", "temperror", "none"]
_SPF_RESULTS = ["pass", "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"]


def _source_ip(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
    return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _record(rng: random.Random) -> str:
    dkim_pass = rng.random() < 0.7
    spf_pass = rng.random() < 0.6
    disposition = "none" if dkim_pass or spf_pass else rng.choice(["none", "quarantine", "reject"])
    reason = ""
    if disposition == "none" and not (dkim_pass or spf_pass):
        reason = "\n        <reason>\n          <type>local_policy</type>\n" \
                 "          <comment>arc=pass</comment>\n        </reason>"
    dkim = "".join(_DKIM.format(domain=rng.choice(_SENDER_DOMAINS), selector=rng.choice(_SELECTORS),
                                result=rng.choice(_DKIM_RESULTS))
                   for _ in range(rng.choice([1, 1, 2, 2, 3])))
    spf = "".join(_SPF.format(domain=rng.choice(_SENDER_DOMAINS), scope=scope,
                              result=rng.choice(_SPF_RESULTS))
                  for scope in (["mfrom"] if rng.random() < 0.7 else ["mfrom", "helo"]))
    return _RECORD.format(
        ip=_source_ip(rng), count=rng.choice([1, 1, 1, 2, 3, 5, 12, 140]),
        disposition=disposition, dkim_eval="pass" if dkim_pass else "fail",
        spf_eval="pass" if spf_pass else "fail", reason=reason,
        header_from=rng.choice(_SENDER_DOMAINS[:3]), envelope_from=rng.choice(_SENDER_DOMAINS),
        dkim=dkim, spf=spf)


def write_report(out: BinaryIO, records: int, seed: int = 1) -> None:
    """Write an uncompressed aggregate report of `records` records to `out`."""
    rng = random.Random(seed)
    out.write(_HEADER.format(records=records, seed=seed).encode())
    chunk: list[str] = []
    for _ in range(records):
        chunk.append(_record(rng))
        if len(chunk) == 1000:
            out.write("".join(chunk).encode())
            chunk.clear()
    out.write("".join(chunk).encode())
    out.write(b"</feedback>\n")


def write_gzipped_report(path: Path, records: int, seed: int = 1) -> Path:
    """Write a gzipped report unless an identical one (same name) is already there."""
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wb", compresslevel=6) as out:
            write_report(out, records, seed)  # type: ignore[arg-type]
        tmp.rename(path)
    return path
