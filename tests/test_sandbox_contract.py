"""The spec check that every sandbox test runs at teardown is real: it fails bodies that break
Alpaca's published spec, and its overlay only adds what the spec leaves out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from live.sandbox.app import Exchange
from live.sandbox.contract import ContractRecorder, default_spec_path, with_overlay

SPEC = Path(__file__).resolve().parents[1].parent / "shared/specs/alpaca-trading-openapi.yaml"
needs_spec = pytest.mark.skipif(not SPEC.is_file(), reason=f"Alpaca's spec not found at {SPEC}")

ORDER = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "abc",
    "created_at": "2024-03-01T20:00:00.000000Z",
    "updated_at": "2024-03-01T20:00:00.000000Z",
    "submitted_at": "2024-03-01T20:00:00.000000Z",
    "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
    "symbol": "AAPL",
    "asset_class": "us_equity",
    "notional": None,
    "qty": "1",
    "filled_qty": "0",
    "order_class": "simple",
    "type": "market",
    "side": "buy",
    "time_in_force": "day",
    "status": "accepted",
    "extended_hours": False,
}


def exchange(method: str, path: str, status: int, body, query: str = "", fault=None) -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(
        method,
        path,
        query,
        b"",
        status,
        {"content-type": "application/json"},
        raw,
        fault,
    )


def test_the_spec_path_is_relative_to_the_project_root():
    assert default_spec_path() == SPEC.resolve()


def test_without_the_spec_the_recorder_only_records(tmp_path):
    recorder = ContractRecorder(tmp_path / "absent.yaml")
    recorder(exchange("GET", "/v2/account", 200, {"id": "not-a-uuid"}))
    assert recorder.checker is None and recorder.problems() == []
    recorder.assert_valid()


@needs_spec
def test_the_checker_fails_what_breaks_the_spec():
    recorder = ContractRecorder(SPEC)
    good = [
        exchange("POST", "/v2/orders", 200, ORDER),
        exchange("GET", "/v2/orders:by_client_order_id", 200, ORDER, "client_order_id=abc"),
        exchange("GET", "/v2/account", 401, {"code": 40110000, "message": "no"}),
        exchange("GET", "/v2/account", 200, b'{"id": "6', fault="malformed"),
        exchange("POST", "/sandbox/advance", 200, {"anything": "goes"}),
    ]
    assert recorder.problems(good) == []
    bad = [
        exchange("GET", "/v2/account", 200, {"id": "not-a-uuid", "status": "ACTIVE"}),
        exchange("POST", "/v2/orders", 200, {**ORDER, "trail_percent": None}),
        exchange("POST", "/v2/orders", 200, {k: v for k, v in ORDER.items() if k != "notional"}),
        exchange("GET", "/v2/clock", 200, {"timestamp": "yesterday", "is_open": True}),
        exchange("GET", "/v2/account", 401, {"error": "unauthorized"}),
        exchange("GET", "/v2/assets/AAPL", 200, {"symbol": "AAPL"}),
        exchange("GET", "/v2/account", 200, {"id": 1}, fault="malformed"),
    ]
    found = [recorder.problems([b]) for b in bad]
    assert all(found), [b.path for b, f in zip(bad, found, strict=True) if not f]
    recorder(bad[0])
    with pytest.raises(AssertionError, match="do not match"):
        recorder.assert_valid()


@needs_spec
def test_the_overlay_only_adds():
    published = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    overlaid = with_overlay(published)
    assert set(published["paths"]) < set(overlaid["paths"])
    assert set(overlaid["paths"]) - set(published["paths"]) == {
        "/v2/orders:by_client_order_id",
        "/v2/assets/{symbol_or_asset_id}",
        "/v2/assets",
    }
    assert overlaid["components"]["schemas"]["Order"] == published["components"]["schemas"]["Order"]
    for path, item in published["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                for status, response in operation["responses"].items():
                    if response and response.get("content"):
                        assert overlaid["paths"][path][method]["responses"][status] == response
