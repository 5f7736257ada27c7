"""Issue #12 guards that need no broker: the paper/live URL rule (item 1)."""

from __future__ import annotations

import pytest

from live.settings import LiveSettings, broker_url_kind

LIVE_SPELLINGS = [
    "https://api.alpaca.markets",
    "https://API.alpaca.markets",
    "https://api.alpaca.markets:443",
    "https://api.alpaca.markets.",
    "https://api.alpaca.markets./v2",
    "http://api.alpaca.markets",
    "https://Api.Alpaca.Markets:443/",
    "https://paper-api.alpaca.markets.evil.example",  # "paper" in the name is not the host
    "https://example.com/paper-api.alpaca.markets",
]
PAPER_SPELLINGS = [
    "https://paper-api.alpaca.markets",
    "https://PAPER-API.alpaca.markets.",
    "https://paper-api.alpaca.markets:443/",
    "http://127.0.0.1:8765",
    "http://localhost:8765",
    "http://[::1]:8765",
    "http://127.0.0.2:9000",
]
UNPARSABLE = [
    " https://api.alpaca.markets",  # a leading space
    "https://api.alpaca.markets ",
    "api.alpaca.markets",  # no scheme
    "ftp://paper-api.alpaca.markets",
    "https://",
    "https://api.alpaca.markets:notaport",
    "http://[::1",
    "",
]


@pytest.mark.parametrize("url", LIVE_SPELLINGS)
def test_every_spelling_of_a_non_paper_host_is_live_and_needs_the_opt_in(url):
    assert broker_url_kind(url) == "live"
    problem = LiveSettings(base_url=url).broker_config_problem()
    assert problem is not None and "LIVE endpoint" in problem
    assert (
        "TRADESHIP_ALLOW_LIVE=1" in LiveSettings(base_url=url, paper=False).broker_config_problem()
    )
    assert LiveSettings(base_url=url, paper=False, allow_live=True).broker_config_problem() is None


@pytest.mark.parametrize("url", PAPER_SPELLINGS)
def test_paper_host_and_loopback_are_paper(url):
    assert broker_url_kind(url) == "paper"
    assert LiveSettings(base_url=url).broker_config_problem() is None


@pytest.mark.parametrize("url", UNPARSABLE)
def test_a_url_that_does_not_parse_is_refused_in_every_mode(url):
    with pytest.raises(ValueError, match="is not a URL"):
        broker_url_kind(url)
    for flags in ({}, {"paper": False, "allow_live": True}):
        assert "is not a URL" in LiveSettings(base_url=url, **flags).broker_config_problem()


def test_live_url_from_the_environment_is_refused_without_the_opt_in(monkeypatch):
    monkeypatch.setenv("APCA_API_BASE_URL", "https://API.alpaca.markets:443")
    for name in ("TRADESHIP_PAPER", "TRADESHIP_ALLOW_LIVE"):
        monkeypatch.delenv(name, raising=False)
    assert "LIVE endpoint" in LiveSettings().broker_config_problem()
