"""The openspf RFC 7208 test suite, every scenario and test, against our SPF evaluator.

The suite lives outside the repository (RUA_SPF_SUITE, a directory or the YAML file itself;
by default ../shared/spf-test-suite); without it these tests skip and say where they looked.
A case may list several acceptable results, and any of them passes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingest.dns_source import DnsAnswer, RecordType
from ingest.spf_evaluator import SpfResult, check_mail_from
from tests.spf_zone_source import ZoneSource

REPO = Path(__file__).resolve().parent.parent
SUITE_FILE = "rfc7208-tests.yml"
SUITE = Path(os.environ.get("RUA_SPF_SUITE", REPO.parent / "shared" / "spf-test-suite"))

SKIPPED: dict[str, str] = {}
"""Case id → why it is skipped. Empty: every case runs. Listed in the skip reasons (-ra)."""


def suite_path() -> Path:
    return SUITE / SUITE_FILE if SUITE.is_dir() else SUITE


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cases() -> list[Any]:
    path = suite_path()
    if not path.is_file():
        reason = f"the openspf RFC 7208 suite is not at {path} (set RUA_SPF_SUITE)"
        return [pytest.param(None, None, id="suite-missing", marks=pytest.mark.skip(reason=reason))]
    cases = []
    with path.open(encoding="utf-8") as stream:
        for scenario in yaml.safe_load_all(stream):
            zone = ZoneSource(scenario["zonedata"])
            for name, test in scenario["tests"].items():
                case_id = f"{_slug(scenario['description'])}/{name}"
                reason = SKIPPED.get(case_id)
                skip = [pytest.mark.skip(reason=f"{case_id}: {reason}")] if reason else []
                cases.append(pytest.param(zone, test, id=case_id, marks=skip))
    return cases


@pytest.mark.parametrize(("zone", "case"), _cases())
def test_case(zone: ZoneSource, case: dict[str, Any]) -> None:
    outcome = check_mail_from(zone, case["host"], case["mailfrom"], case["helo"])
    expected = case["result"] if isinstance(case["result"], list) else [case["result"]]
    assert outcome.result in expected, _describe(outcome, case)
    if "explanation" in case and outcome.result == "fail":
        if case["explanation"] == "DEFAULT":
            assert outcome.explanation_domain is None, _describe(outcome, case)
        else:
            # %{i} spells IPv6 nibbles in lower case, as RFC 7208 §7.4's example does; the
            # suite writes them upper-case. DNS names are case-insensitive, so either is right.
            assert outcome.explanation is not None
            assert outcome.explanation.lower() == case["explanation"].lower(), _describe(outcome, case)
    assert_replayable(outcome, case)


def assert_replayable(outcome: SpfResult, case: dict[str, Any]) -> None:
    """The answers a result lists are all an evaluation needs: replaying them alone (as a
    snapshot would) gives the same result, explanation and lookups."""
    replay = check_mail_from(_Replay(outcome), case["host"], case["mailfrom"], case["helo"])
    assert (replay.result, replay.explanation, replay.lookups) == \
        (outcome.result, outcome.explanation, outcome.lookups)


class _Replay:
    def __init__(self, outcome: SpfResult) -> None:
        self._answers = {(answer.name, answer.rdtype): answer for answer in outcome.lookups}

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        return self._answers[(name, rdtype)]


def _describe(outcome: SpfResult, case: dict[str, Any]) -> str:
    return (f"expected {case['result']} ({case.get('explanation', '')!r}), got {outcome.result}: "
            f"{outcome.reason}; explanation {outcome.explanation!r}; spec {case.get('spec')}; "
            f"{case.get('description', '')}")
