"""One settings object for the CLI: every knob also reads a TRADESHIP_* environment variable."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tradeship"


class Settings(BaseSettings):
    """Defaults for the CLI; flags override them, environment variables set them."""

    model_config = SettingsConfigDict(env_prefix="TRADESHIP_", extra="ignore")

    cache_dir: Path = _default_cache_root()
    source: str = "demo"
    workers: int = 0  # 0 = all cores
    progress: bool = True
