"""Live-run configuration: one settings object read from the environment.

Credentials use Alpaca's own variable names; everything else the `TRADESHIP_` prefix. The
object never prints its secrets (`SecretStr`).
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ALPACA_PAPER_URL = "https://paper-api.alpaca.markets"
ALPACA_LIVE_URL = "https://api.alpaca.markets"
ALPACA_PAPER_HOST = "paper-api.alpaca.markets"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def broker_url_kind(url: str) -> str:
    """ "paper" (Alpaca's paper host or a loopback address) or "live" (any other host).

    The host is parsed, lower-cased and stripped of its trailing dot, so no spelling of the
    live host (case, port, trailing dot, scheme) passes for paper. A URL that does not parse
    into an http(s) scheme and a host raises ValueError: it is refused, never guessed.
    """
    text = str(url)
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").rstrip(".")
        scheme = parts.scheme.lower()
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        host = scheme = ""
    if text != text.strip() or scheme not in ("http", "https") or not host:
        raise ValueError(
            f"APCA_API_BASE_URL {text!r} is not a URL like https://paper-api.alpaca.markets: "
            "fix it (no spaces, scheme http or https, a host)"
        )
    if host == ALPACA_PAPER_HOST or host in _LOOPBACK_NAMES:
        return "paper"
    try:
        return "paper" if ipaddress.ip_address(host).is_loopback else "live"
    except ValueError:
        return "live"


class LiveSettings(BaseSettings):
    """What a live run may do: broker, journal, risk limits, switches."""

    model_config = SettingsConfigDict(
        env_prefix="TRADESHIP_", extra="ignore", populate_by_name=True
    )

    api_key_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("APCA_API_KEY_ID")
    )
    api_secret_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("APCA_API_SECRET_KEY")
    )
    base_url: str = Field(
        default=ALPACA_PAPER_URL, validation_alias=AliasChoices("APCA_API_BASE_URL")
    )
    paper: bool = True  # TRADESHIP_PAPER=0 with TRADESHIP_ALLOW_LIVE=1 trades real money
    allow_live: bool = False
    allow_closed_market: bool = False
    kill_switch: bool = False  # TRADESHIP_KILL_SWITCH=1 stops all new orders
    kill_file: Path | None = None  # ... and so does this file existing
    journal: str = ""  # "sqlite:PATH" (default under ~/.cache/tradeship) or "s3://bucket/prefix"
    fractional: bool = False
    cash_buffer: float = 0.01
    min_notional: float = 1.0
    max_position_weight: float = 1.0
    max_gross_exposure: float = 1.0
    max_order_notional: float = math.inf
    max_run_notional: float = math.inf
    max_orders: int = 100
    request_timeout: float = 10.0  # seconds per HTTP request to the broker
    retry_budget: float = 30.0  # seconds a run may spend waiting out 429s and 5xx
    max_attempts: int = 4
    clock_tolerance: float = 300.0  # seconds a requested as-of time may differ from the broker's

    def kill_switch_reason(self) -> str | None:
        if self.kill_switch:
            return "the kill switch TRADESHIP_KILL_SWITCH is on"
        if self.kill_file is not None and Path(self.kill_file).exists():
            return f"the kill-switch file {self.kill_file} exists"
        return None

    def broker_config_problem(self) -> str | None:
        """A paper/live contradiction, or live trading without the explicit opt-in."""
        url = self.base_url
        try:
            kind = broker_url_kind(url)
        except ValueError as exc:
            return str(exc)
        if kind == "live" and (self.paper or not self.allow_live):
            return (
                f"APCA_API_BASE_URL {url!r} is not Alpaca's paper host or a loopback address, "
                "so it can trade real money (a LIVE endpoint): use "
                f"{ALPACA_PAPER_URL}, or set TRADESHIP_PAPER=0 and TRADESHIP_ALLOW_LIVE=1"
            )
        if not self.paper and urlsplit(url).hostname.rstrip(".") == ALPACA_PAPER_HOST:
            return f"TRADESHIP_PAPER=0 (live) but APCA_API_BASE_URL is a paper endpoint ({url})"
        if not self.paper and not self.allow_live:
            return "live trading needs the explicit opt-in TRADESHIP_ALLOW_LIVE=1"
        return None
