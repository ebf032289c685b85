"""Settings: one class, read from `RUA_*` variables and the TOML file `RUA_CONFIG` names.

The environment wins over the file, which wins over the defaults; every limit set either way
must reach the pipeline and change what it accepts, both in-process and through `rua`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from sqlalchemy import Engine

from app.db import create_db_engine
from app.settings import Settings, get_settings
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline
from tests import samples
from tests.conftest import count_rows
from tests.preloaded_server import run_rua_text

RUA = Path(sys.executable).parent / "rua"

# Settings field -> the UnpackLimits attribute it sets
LIMIT_FIELDS = {
    "max_input_bytes": "max_input_bytes",
    "max_message_bytes": "max_message_bytes",
    "max_decompressed_bytes": "max_decompressed_bytes",
    "max_compression_ratio": "max_compression_ratio",
    "max_nesting_depth": "max_nesting_depth",
    "max_members": "max_members",
    "max_mbox_messages": "max_mbox_messages",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RUA_* variable of the caller's shell may leak into these tests."""
    for key in list(os.environ):
        if key.upper().startswith("RUA_"):
            monkeypatch.delenv(key)
    get_settings.cache_clear()


def toml_file(directory: Path, values: dict[str, Any]) -> Path:
    lines = [f"{key} = {json.dumps(str(value)) if isinstance(value, (str, Path)) else value}"
             for key, value in values.items()]
    path = directory / "rua.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- reading -----------------------------------------------------------------------------------

def test_one_settings_class_with_safe_defaults() -> None:
    """Without any configuration Rua runs self-contained, with the limits' built-in defaults."""
    assert issubclass(Settings, BaseSettings)
    settings = Settings()
    assert settings.database_url.startswith("sqlite:///")
    assert isinstance(settings.data_dir, Path)
    assert settings.unpack_limits == UnpackLimits()
    assert isinstance(get_settings(), Settings)


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every setting can come from a RUA_* variable (containers are configured this way)."""
    monkeypatch.setenv("RUA_DATABASE_URL", "postgresql+psycopg://u:p@db.example/rua")
    monkeypatch.setenv("RUA_DATA_DIR", str(tmp_path / "keep"))
    for number, field in enumerate(LIMIT_FIELDS, start=3):
        monkeypatch.setenv(f"RUA_{field.upper()}", str(number))
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u:p@db.example/rua"
    assert settings.data_dir == tmp_path / "keep"
    limits = settings.unpack_limits
    for number, (field, attribute) in enumerate(LIMIT_FIELDS.items(), start=3):
        assert getattr(settings, field) == number, field
        assert getattr(limits, attribute) == number, f"{field} does not reach UnpackLimits.{attribute}"


def test_toml_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The file named by RUA_CONFIG supplies whatever the environment does not."""
    values: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path / 'from-toml.db'}",
                              "data_dir": tmp_path / "toml-data"}
    values.update({field: 10 + n for n, field in enumerate(LIMIT_FIELDS)})
    monkeypatch.setenv("RUA_CONFIG", str(toml_file(tmp_path, values)))
    settings = Settings()
    assert settings.database_url == values["database_url"]
    assert settings.data_dir == tmp_path / "toml-data"
    for n, (field, attribute) in enumerate(LIMIT_FIELDS.items()):
        assert getattr(settings.unpack_limits, attribute) == 10 + n, field


def test_environment_wins_over_the_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An operator overrides one value of a shared file with one variable."""
    monkeypatch.setenv("RUA_CONFIG", str(toml_file(tmp_path, {
        "database_url": "sqlite:///from-file.db", "data_dir": "/srv/from-file",
        "max_members": 3, "max_input_bytes": 1000})))
    monkeypatch.setenv("RUA_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("RUA_MAX_MEMBERS", "7")
    settings = Settings()
    assert settings.database_url == "sqlite:///from-env.db"
    assert settings.max_members == 7 and settings.unpack_limits.max_members == 7
    assert settings.data_dir == Path("/srv/from-file"), "what the environment leaves alone is the file's"
    assert settings.max_input_bytes == 1000


def test_missing_config_file_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A typo in RUA_CONFIG must not silently fall back to the defaults (another database)."""
    missing = tmp_path / "nowhere" / "rua.toml"
    monkeypatch.setenv("RUA_CONFIG", str(missing))
    with pytest.raises(Exception) as caught:  # any error type, as long as it says why
        Settings()
    assert str(missing) in str(caught.value)


@pytest.mark.parametrize(("field", "value"), [
    ("max_members", "0"), ("max_input_bytes", "-1"), ("max_compression_ratio", "1"),
    ("max_nesting_depth", "many"),
])
def test_invalid_limits_are_refused(monkeypatch: pytest.MonkeyPatch, field: str, value: str) -> None:
    """A limit of zero or nonsense would refuse everything (or nothing): refuse the setting instead."""
    monkeypatch.setenv(f"RUA_{field.upper()}", value)
    with pytest.raises(ValidationError):
        Settings()


# -- limits change what the pipeline does ------------------------------------------------------

def report(n: int = 20, **kwargs: str) -> bytes:
    return samples.aggregate_xml([samples.Rec(source_ip=f"192.0.2.{i + 1}") for i in range(n)], **kwargs)


def padded_gz() -> bytes:
    """More than the 8 MiB ratio grace of blank-padded records: compresses a thousandfold."""
    records = [samples.Rec(source_ip=f"10.0.0.{i + 1}") for i in range(90)]
    xml = samples.aggregate_xml(records).replace(b"</record>\n", b"</record>" + b" " * 100_000 + b"\n")
    return samples.gz(xml)


# field, strict value, a value that lets the input through, the input
LIMIT_CASES: list[tuple[str, str, str, bytes]] = [
    ("max_input_bytes", "2000", "100000", report()),
    ("max_message_bytes", "3000", "1000000",
     samples.email_with([(report(), "text/xml", "report.xml")])),
    ("max_decompressed_bytes", "3000", "100000", samples.gz(report())),
    ("max_compression_ratio", "2", "100000", padded_gz()),
    ("max_nesting_depth", "1", "3", samples.gz(samples.gz(report()))),
    ("max_members", "1", "2",
     samples.zipped({"a.xml": report(report_id="a"), "b.xml": report(report_id="b")})),
    ("max_mbox_messages", "1", "2", samples.mbox([
        samples.email_with([(samples.gz(report(report_id="a")), "application/gzip", "a.gz")]),
        samples.email_with([(samples.gz(report(report_id="b")), "application/gzip", "b.gz")])])),
]


@pytest.fixture
def sqlite_engine(sqlite_template: Path, tmp_path: Path) -> Any:
    target = tmp_path / "settings.db"
    shutil.copy(sqlite_template, target)
    engine = create_db_engine(f"sqlite:///{target}")
    yield engine
    engine.dispose()


@pytest.mark.parametrize(("field", "strict", "loose", "data"), LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_each_limit_changes_pipeline_behaviour(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               sqlite_engine: Engine, field: str, strict: str, loose: str,
                                               data: bytes) -> None:
    """The same input is refused under the setting's strict value and stored under a loose one."""
    path = tmp_path / "input"
    path.write_bytes(data)
    monkeypatch.setenv(f"RUA_{field.upper()}", strict)
    settings = Settings()
    refused = IngestPipeline(sqlite_engine, tmp_path / "data", settings.unpack_limits).ingest_path(path)
    assert refused.status in ("failed", "partial"), f"{field}={strict} did not refuse: {refused}"
    errors = refused.describe_errors() or ""
    assert f"={strict} exceeded" in errors, errors
    assert count_rows(sqlite_engine, "aggregate_report") == 0 or refused.status == "partial"

    monkeypatch.setenv(f"RUA_{field.upper()}", loose)
    accepted = IngestPipeline(sqlite_engine, tmp_path / "data", Settings().unpack_limits).ingest_path(path)
    assert accepted.status == "ok", f"{field}={loose}: {accepted.describe_errors()}"


@pytest.mark.parametrize(("field", "strict", "loose", "data"), LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_limit_errors_name_the_setting_to_raise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                sqlite_engine: Engine, field: str, strict: str, loose: str,
                                                data: bytes) -> None:
    """A refusal names the limit "so users can raise it": the name must be one they can set."""
    path = tmp_path / "input"
    path.write_bytes(data)
    monkeypatch.setenv(f"RUA_{field.upper()}", strict)
    refused = IngestPipeline(sqlite_engine, tmp_path / "data", Settings().unpack_limits).ingest_path(path)
    errors = refused.describe_errors() or ""
    assert f"{field}={strict}" in errors, f"the error does not name RUA_{field.upper()}: {errors}"


# -- through the command -----------------------------------------------------------------------

def rua(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_rua_text(list(args), env, cwd=cwd)


def base_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("RUA_")}
    env.update(extra)
    return env


def test_toml_file_configures_the_command(tmp_path: Path) -> None:
    """Database, data directory and limits from the file reach `rua`; a variable overrides one."""
    db = tmp_path / "toml" / "rua.db"
    data_dir = tmp_path / "toml" / "data"
    config = toml_file(tmp_path, {"database_url": f"sqlite:///{db}", "data_dir": data_dir, "max_members": 1})
    env = base_env(RUA_CONFIG=str(config))
    (tmp_path / "two.zip").write_bytes(samples.zipped({"a.xml": report(report_id="a"),
                                                       "b.xml": report(report_id="b")}))
    (tmp_path / "one.xml").write_bytes(report(report_id="c"))

    upgraded = rua(env, "db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert db.is_file(), "the database named in the TOML file was not created"

    strict = rua(env, "ingest", "--json", "two.zip", "one.xml", cwd=tmp_path)
    result = json.loads(strict.stdout)
    assert strict.returncode != 0
    assert (result["inputs_failed"], result["reports_new"]) == (1, 1)
    assert "max_members=1" in json.dumps(result["failures"])
    assert len(list((data_dir / "originals").rglob("*.*"))) == 2, "originals go to the TOML data_dir"
    assert not (tmp_path / "rua-data").exists() and not (tmp_path / "rua.db").exists()

    loose = rua(dict(env, RUA_MAX_MEMBERS="2"), "ingest", "--json", "two.zip", cwd=tmp_path)
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert json.loads(loose.stdout)["reports_new"] == 2
    engine = create_db_engine(f"sqlite:///{db}")
    assert count_rows(engine, "aggregate_report") == 3
    engine.dispose()


def test_environment_limit_configures_the_command(tmp_path: Path, sqlite_template: Path) -> None:
    """RUA_DATABASE_URL, RUA_DATA_DIR and a RUA_MAX_* limit, straight from the environment."""
    db = tmp_path / "env.db"
    shutil.copy(sqlite_template, db)
    data_dir = tmp_path / "env-data"
    env = base_env(RUA_DATABASE_URL=f"sqlite:///{db}", RUA_DATA_DIR=str(data_dir), RUA_MAX_INPUT_BYTES="3000")
    (tmp_path / "small.xml").write_bytes(report(2))
    (tmp_path / "large.xml").write_bytes(report(60))
    result = rua(env, "ingest", "--json", "small.xml", "large.xml", cwd=tmp_path)
    assert result.returncode != 0
    data = json.loads(result.stdout)
    assert (data["inputs_failed"], data["reports_new"], data["records_new"]) == (1, 1, 2)
    assert [f["input"] for f in data["failures"]] == ["large.xml"]
    assert "max_input_bytes=3000" in data["failures"][0]["error"]
    engine = create_db_engine(f"sqlite:///{db}")
    assert count_rows(engine, "aggregate_record") == 2
    engine.dispose()
    assert len(list((data_dir / "originals").rglob("*.*"))) == 1


def test_missing_config_file_is_a_clear_command_error(tmp_path: Path) -> None:
    """One line saying what is wrong, not a traceback; and nothing done with the defaults."""
    missing = tmp_path / "nowhere.toml"
    env = base_env(RUA_CONFIG=str(missing))
    (tmp_path / "r.xml").write_bytes(report(2))
    result = rua(env, "ingest", "r.xml", cwd=tmp_path)
    assert result.returncode != 0
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3, result.stderr
    assert not (tmp_path / "rua.db").exists() and not (tmp_path / "rua-data").exists()


def test_a_senders_file_extends_the_catalogue_and_a_broken_one_is_refused(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    extra = tmp_path / "senders.toml"
    extra.write_text('[[service]]\nname = "Our Relay"\ntype = "forwarder"\nptr_domains = ["relay.example"]\n')
    monkeypatch.setenv("RUA_SENDERS_FILE", str(extra))
    catalogue = Settings().sender_catalogue()
    found = catalogue.by_ptr("mx1.relay.example")
    assert found is not None and (found.name, str(found.type)) == ("Our Relay", "forwarder")
    assert catalogue.by_name("Google Workspace / Gmail") is not None  # the shipped entries stay

    extra.write_text('[[service]]\nname = "Broken"\ntype = "spaceship"\n')
    with pytest.raises(ValidationError, match="spaceship"):
        Settings()
    monkeypatch.setenv("RUA_SENDERS_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises((ValidationError, FileNotFoundError), match=r"missing\.toml"):
        Settings()
