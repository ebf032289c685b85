"""All of Rua's settings, read once from `RUA_*` variables and an optional TOML file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.limits import UnpackLimits

_DEFAULTS = UnpackLimits()


class Settings(BaseSettings):
    """Environment variables win over the TOML file named by `RUA_CONFIG`, which wins over defaults."""

    model_config = SettingsConfigDict(env_prefix="RUA_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./rua.db",
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user:pw@host/db")
    data_dir: Path = Field(default=Path("./rua-data"),
                           description="Where original inputs (and so quarantined ones) are kept")
    max_input_bytes: int = Field(default=_DEFAULTS.max_input_bytes, gt=0)
    max_message_bytes: int = Field(default=_DEFAULTS.max_message_bytes, gt=0)
    max_decompressed_bytes: int = Field(default=_DEFAULTS.max_decompressed_bytes, gt=0)
    max_compression_ratio: int = Field(default=_DEFAULTS.max_compression_ratio, gt=1)
    max_nesting_depth: int = Field(default=_DEFAULTS.max_nesting_depth, ge=1)
    max_members: int = Field(default=_DEFAULTS.max_members, ge=1)
    max_mbox_messages: int = Field(default=_DEFAULTS.max_mbox_messages, ge=1)
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024, gt=0,
        description="Largest HTTP upload body; larger ones get 413 before they are read in full")
    public_metrics: bool = Field(default=True, description="Serve /metrics without a token")
    public_docs: bool = Field(
        default=False, description="Serve /docs and /openapi.json without a token (trusted networks)")
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, for log collectors")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get("RUA_CONFIG")
        if config:
            if not Path(config).is_file():
                raise ValueError(f"RUA_CONFIG names {config!r}, which is not a readable file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    @property
    def unpack_limits(self) -> UnpackLimits:
        return UnpackLimits(
            max_input_bytes=self.max_input_bytes,
            max_message_bytes=self.max_message_bytes,
            max_decompressed_bytes=self.max_decompressed_bytes,
            max_compression_ratio=self.max_compression_ratio,
            max_nesting_depth=self.max_nesting_depth,
            max_members=self.max_members,
            max_mbox_messages=self.max_mbox_messages,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
