"""One settings object for the CLI: every knob also reads a TRADESHIP_* environment variable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from marketdata.cache import cache_root


class Settings(BaseSettings):
    """Defaults for the CLI; flags override them, environment variables set them."""

    model_config = SettingsConfigDict(env_prefix="TRADESHIP_", extra="ignore")

    cache_dir: Path = Field(default_factory=cache_root)  # TRADESHIP_CACHE_DIR, else XDG
    source: str = "demo"
    workers: int = 0  # 0 = all cores
    progress: bool = True
