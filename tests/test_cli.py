"""The real `rua` command, run in subprocesses as a user (or cron, or a container) runs it.

Each test gets its own database and data directory through `RUA_DATABASE_URL` and
`RUA_DATA_DIR`, and runs `rua db upgrade` first, exactly as the documentation says to.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from app.db import _alembic_config, create_db_engine
from tests import samples
from tests.conftest import count_rows
from tests.preloaded_server import run_rua, run_rua_text

RUA = Path(sys.executable).parent / "rua"


def clean_environment(**extra: str) -> dict[str, str]:
    """The caller's environment without any RUA_* setting that could leak in, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RUA_")}
    env.update(extra)
    return env


def rua(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_rua_text(list(args), env, cwd=cwd)


def rua_bytes_stdin(env: dict[str, str], *args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return run_rua(list(args), env, stdin=stdin)


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON object `--json` prints; anything else on stdout is an error."""
    try:
        value = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"stdout is not one JSON object: {result.stdout!r}\n{result.stderr}") from exc
    assert isinstance(value, dict)
    for key in ("inputs", "inputs_failed", "reports_new", "reports_duplicate", "records_new", "failures"):
        assert key in value, f"--json summary lacks {key!r}"
    return value


@pytest.fixture(scope="module")
def upgraded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database made by `rua db upgrade` itself, once; each test gets a copy."""
    directory = tmp_path_factory.mktemp("cli-template")
    path = directory / "new" / "rua.db"
    result = rua(clean_environment(RUA_DATABASE_URL=f"sqlite:///{path}",
                                   RUA_DATA_DIR=str(directory / "data")), "db", "upgrade", cwd=directory)
    assert result.returncode == 0, result.stderr
    assert path.is_file(), "rua db upgrade did not create the database RUA_DATABASE_URL names"
    engine = create_db_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture
def env(tmp_path: Path, upgraded_template: Path) -> Iterator[dict[str, str]]:
    """A migrated SQLite database and a data directory, named only by environment variables."""
    (tmp_path / "cli").mkdir()
    shutil.copy(upgraded_template, tmp_path / "cli" / "rua.db")
    yield clean_environment(RUA_DATABASE_URL=f"sqlite:///{tmp_path / 'cli' / 'rua.db'}",
                            RUA_DATA_DIR=str(tmp_path / "cli" / "data"))


def db_engine(env: dict[str, str]) -> Any:
    return create_db_engine(env["RUA_DATABASE_URL"])


TLS_REPORT = (b'{"organization-name": "Example", "report-id": "tls-1", "policies": [], "date-range": '
              b'{"start-datetime": "2026-11-01T00:00:00Z", "end-datetime": "2026-11-01T23:59:59Z"}}')


def two_record_report(**kwargs: str) -> bytes:
    return samples.aggregate_xml([samples.Rec(), samples.Rec(source_ip="2001:db8::5", count="7")], **kwargs)


# -- inputs ------------------------------------------------------------------------------------

def test_ingest_a_file_prints_a_closing_summary(env: dict[str, str], tmp_path: Path) -> None:
    """The human summary says what happened: new, duplicate, failed, records, rate."""
    path = tmp_path / "r.xml.gz"
    path.write_bytes(samples.gz(two_record_report()))
    first = rua(env, "ingest", str(path), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.strip().splitlines()
    assert lines, "no summary printed"
    closing = lines[-1]
    assert re.search(r"\b1 inputs? \(0 failed\)", closing), closing
    assert re.search(r"\b1 new, 0 duplicate, 0 failed\b", closing), closing
    assert re.search(r"\b2 records\b", closing), closing
    assert re.search(r"[\d,.]+ records/s", closing), closing

    second = rua(env, "ingest", str(path), cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    closing = second.stdout.strip().splitlines()[-1]
    assert re.search(r"\b0 new, 1 duplicate, 0 failed\b", closing), closing
    assert re.search(r"\b0 records\b", closing), closing

    engine = db_engine(env)
    assert count_rows(engine, "aggregate_report") == 1
    assert count_rows(engine, "aggregate_record") == 2
    engine.dispose()
    kept = list((Path(env["RUA_DATA_DIR"]) / "originals").rglob("*"))
    assert any(hashlib.sha256(path.read_bytes()).hexdigest() in p.name for p in kept), \
        "the original is kept under RUA_DATA_DIR"


def test_ingest_json_reports_exact_values(env: dict[str, str], tmp_path: Path) -> None:
    """`--json` is for scripts: one object whose numbers and failures are right, not just present."""
    good = tmp_path / "good.xml"
    good.write_bytes(two_record_report())
    copy = tmp_path / "copy.xml.gz"
    copy.write_bytes(samples.gz(two_record_report()))
    other = tmp_path / "other.zip"
    other.write_bytes(samples.zipped({"a.xml": two_record_report(report_id="a"),
                                      "b.xml": two_record_report(report_id="b")}))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 this is no report")
    tls = tmp_path / "tls.json"
    tls.write_bytes(TLS_REPORT)
    missing = tmp_path / "missing.xml"
    mixed = tmp_path / "mixed.zip"
    mixed.write_bytes(samples.zipped({"m.xml": two_record_report(report_id="m"), "bad.bin": b"\x00junk"}))

    result = rua(env, "ingest", "--json", *map(str, (good, copy, other, junk, tls, missing, mixed)),
                 cwd=tmp_path)
    assert result.returncode != 0, "an input failed, so the exit status must say so"
    data = summary(result)
    assert data["inputs"] == 7
    assert data["inputs_failed"] == 3, "a partly failed input counts as failed"
    assert data["reports_new"] == 5, "four aggregate reports and the TLS report"
    assert data["reports_duplicate"] == 1
    assert data["records_new"] == 8
    failures = data["failures"]
    assert isinstance(failures, list)
    assert all(set(failure) >= {"input", "error"} for failure in failures), failures
    assert all(isinstance(failure["error"], str) and failure["error"] for failure in failures)
    assert len(failures) == 3
    by_input = {failure["input"]: failure["error"] for failure in failures}
    assert "not a report" in by_input[str(junk)]
    assert "missing.xml" in by_input[str(missing)]
    (member,) = [name for name in by_input if name.startswith(str(mixed))]
    assert member.endswith("bad.bin"), "a failed part is named inside its input"

    again = rua(env, "ingest", "--json", str(good), str(other), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    data = summary(again)
    assert (data["inputs"], data["inputs_failed"], data["reports_new"], data["reports_duplicate"],
            data["records_new"], data["failures"]) == (2, 0, 0, 3, 0, [])


def test_ingest_folders_recursively(env: dict[str, str], tmp_path: Path) -> None:
    """A folder is read to any depth, every file in it an input."""
    root = tmp_path / "inbox"
    (root / "2024" / "01").mkdir(parents=True)
    (root / "a.xml").write_bytes(two_record_report(report_id="a"))
    (root / "2024" / "b.xml.gz").write_bytes(samples.gz(two_record_report(report_id="b")))
    (root / "2024" / "01" / "c.eml").write_bytes(samples.email_with(
        [(samples.gz(two_record_report(report_id="c")), "application/gzip", "c.xml.gz")]))
    result = rua(env, "ingest", "--json", str(root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = summary(result)
    assert (data["inputs"], data["reports_new"], data["records_new"]) == (3, 3, 6)


def test_ingest_expands_quoted_globs(env: dict[str, str], tmp_path: Path) -> None:
    """A glob the shell did not expand (quoted, or from cron) is expanded by rua itself."""
    root = tmp_path / "drop"
    (root / "deep").mkdir(parents=True)
    (root / "one.xml").write_bytes(two_record_report(report_id="one"))
    (root / "two.xml").write_bytes(two_record_report(report_id="two"))
    (root / "skip.txt").write_bytes(b"not matched by the glob, and not a report")
    (root / "deep" / "three.xml").write_bytes(two_record_report(report_id="three"))

    flat = rua(env, "ingest", "--json", str(root / "*.xml"), "drop/*.t?t", cwd=tmp_path)
    data = summary(flat)
    assert (data["inputs"], data["reports_new"], data["inputs_failed"]) == (3, 2, 1)
    assert [f["input"] for f in data["failures"]] == [str(Path("drop") / "skip.txt")]

    recursive = rua(env, "ingest", "--json", str(root / "**" / "*.xml"), cwd=tmp_path)
    assert recursive.returncode == 0, recursive.stderr
    data = summary(recursive)
    assert (data["inputs"], data["reports_new"], data["reports_duplicate"]) == (3, 1, 2)


def test_ingest_reads_standard_input(env: dict[str, str], tmp_path: Path) -> None:
    """`-` reads one input from stdin (a mail filter pipes each message in)."""
    message = samples.email_with([(samples.gz(two_record_report()), "application/gzip", "r.xml.gz")])
    result = rua_bytes_stdin(env, "ingest", "--json", "-", stdin=message)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["inputs"], data["reports_new"], data["records_new"]) == (1, 1, 2)
    engine = db_engine(env)
    with engine.connect() as conn:
        source, sha = conn.exec_driver_sql("SELECT source, sha256 FROM original").one()
    engine.dispose()
    assert sha == hashlib.sha256(message).hexdigest(), "stdin is kept byte for byte"
    assert "stdin" in source

    again = rua_bytes_stdin(env, "ingest", "--json", "-", stdin=samples.gz(two_record_report()))
    assert json.loads(again.stdout)["reports_duplicate"] == 1


def test_exit_status_zero_unless_an_input_failed(env: dict[str, str], tmp_path: Path) -> None:
    """TLS reports and duplicates are fine; one failed input among good ones is not."""
    tls = tmp_path / "tls.json"
    tls.write_bytes(TLS_REPORT)
    report = tmp_path / "r.xml"
    report.write_bytes(two_record_report())
    ok = rua(env, "ingest", str(tls), str(report), str(report), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    failed = rua(env, "ingest", "--json", str(report), str(empty), str(tmp_path / "nowhere" / "*.xml"),
                 cwd=tmp_path)
    assert failed.returncode != 0
    data = summary(failed)
    assert data["inputs_failed"] == 2, "an empty file, and a glob that matches nothing, are failures"
    assert {f["input"] for f in data["failures"]} == {str(empty), str(tmp_path / "nowhere" / "*.xml")}


def test_retry_failed_reparses_quarantined_inputs(env: dict[str, str], tmp_path: Path) -> None:
    """An input refused by a limit is kept; `--retry-failed` with a wider limit stores it."""
    xml = samples.aggregate_xml([samples.Rec(source_ip=f"192.0.2.{i}") for i in range(1, 50)])
    path = tmp_path / "big.xml.gz"
    path.write_bytes(samples.gz(xml))
    strict = dict(env, RUA_MAX_DECOMPRESSED_BYTES=str(len(xml) // 2))
    refused = rua(strict, "ingest", "--json", str(path), cwd=tmp_path)
    assert refused.returncode != 0
    data = summary(refused)
    assert (data["inputs_failed"], data["reports_new"]) == (1, 0)
    assert "max_decompressed_bytes" in json.dumps(data["failures"])
    path.unlink()  # only the kept original remains

    retried = rua(env, "ingest", "--json", "--retry-failed", cwd=tmp_path)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    data = summary(retried)
    assert (data["inputs"], data["inputs_failed"], data["reports_new"], data["records_new"]) == (1, 0, 1, 49)

    nothing_left = rua(env, "ingest", "--json", "--retry-failed", cwd=tmp_path)
    assert nothing_left.returncode == 0
    assert summary(nothing_left)["inputs"] == 0


def test_corpus_through_the_command_line(env: dict[str, str], corpus: Path, tmp_path: Path) -> None:
    """A recursive glob over the real corpus: every XML file in, none failed."""
    xml_files = sorted(corpus.rglob("*.xml"))
    result = rua(env, "ingest", "--json", str(corpus / "**" / "*.xml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    data = summary(result)
    assert data["inputs"] == len(xml_files)
    assert data["inputs_failed"] == 0 and data["failures"] == []
    assert data["reports_new"] + data["reports_duplicate"] == len(xml_files)


# -- database ----------------------------------------------------------------------------------

def test_ingest_on_an_unmigrated_database_says_to_upgrade(tmp_path: Path) -> None:
    """A clear message, not a traceback or a half-created schema."""
    db = tmp_path / "fresh" / "rua.db"
    environment = clean_environment(RUA_DATABASE_URL=f"sqlite:///{db}", RUA_DATA_DIR=str(tmp_path / "data"))
    report = tmp_path / "r.xml"
    report.write_bytes(two_record_report())
    result = rua(environment, "ingest", str(report), cwd=tmp_path)
    assert result.returncode != 0
    assert "rua db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
    engine = create_db_engine(f"sqlite:///{db}")
    assert "aggregate_report" not in inspect(engine).get_table_names()
    engine.dispose()

    upgraded = rua(environment, "db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    after = rua(environment, "ingest", "--json", str(report), cwd=tmp_path)
    assert after.returncode == 0 and summary(after)["reports_new"] == 1


def test_db_upgrade_on_each_database(database_url: str, tmp_path: Path) -> None:
    """`rua db upgrade` migrates what RUA_DATABASE_URL names, and is safe to run again."""
    from alembic import command

    environment = clean_environment(RUA_DATABASE_URL=database_url, RUA_DATA_DIR=str(tmp_path / "data"))
    again = rua(environment, "db", "upgrade", cwd=tmp_path)
    assert again.returncode == 0, again.stderr

    command.downgrade(_alembic_config(database_url), "base")
    report = tmp_path / "r.xml"
    report.write_bytes(two_record_report())
    refused = rua(environment, "ingest", str(report), cwd=tmp_path)
    assert refused.returncode != 0 and "rua db upgrade" in refused.stderr

    upgraded = rua(environment, "db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    engine = create_db_engine(database_url)
    assert {"original", "aggregate_report", "aggregate_record", "report_origin"} <= set(
        inspect(engine).get_table_names())
    result = rua(environment, "ingest", "--json", str(report), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert summary(result)["records_new"] == 2
    assert count_rows(engine, "aggregate_record") == 2
    engine.dispose()
