"""Check the sandbox's HTTP answers against Alpaca's published Trading API spec.

The spec is `../shared/specs/alpaca-trading-openapi.yaml` from the project root (it is
never copied into the project). Validation uses openapi-core (a dev dependency, imported
only here). The published spec has gaps, so the contract is the spec plus this overlay,
and nothing else:

1. Two endpoints alpaca-py calls that the spec omits get a response schema built from
   the spec's own components: `GET /v2/orders:by_client_order_id` → `Order`,
   `GET /v2/assets/{symbol_or_asset_id}` → `Assets`.
2. Error answers: the spec documents few error statuses and no error body. Every
   operation gets a `default` response, and every documented >= 400 response without a
   body gets one, of Alpaca's documented error shape `{"code": int, "message": str}`.

`/sandbox/*` answers are not Alpaca's and are not checked; a response shaped by the
`malformed` fault must *not* be valid JSON.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from live.sandbox.app import Exchange

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SPEC_RELATIVE = "../shared/specs/alpaca-trading-openapi.yaml"
SPEC_HOST = "https://paper-api.alpaca.markets"  # the spec's paper server

ALPACA_ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
}


def default_spec_path() -> Path:
    return (PROJECT_ROOT / SPEC_RELATIVE).resolve()


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def with_overlay(spec: dict[str, Any]) -> dict[str, Any]:
    """The published spec plus the overlay described in the module docstring."""
    spec = copy.deepcopy(spec)
    spec.setdefault("components", {}).setdefault("schemas", {})["AlpacaError"] = ALPACA_ERROR
    error_ref = {"$ref": "#/components/schemas/AlpacaError"}
    paths = spec.setdefault("paths", {})
    paths.setdefault(
        "/v2/orders:by_client_order_id",
        {
            "get": {
                "operationId": "sandboxOverlayGetOrderByClientOrderId",
                "parameters": [
                    {
                        "name": "client_order_id",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": _json_content({"$ref": "#/components/schemas/Order"}),
                    }
                },
            }
        },
    )
    paths.setdefault(
        "/v2/assets/{symbol_or_asset_id}",
        {
            "parameters": [
                {
                    "name": "symbol_or_asset_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "get": {
                "operationId": "sandboxOverlayGetAsset",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": _json_content({"$ref": "#/components/schemas/Assets"}),
                    }
                },
            },
        },
    )
    for item in paths.values():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete") or not operation:
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault(
                "default", {"description": "Alpaca error", "content": _json_content(error_ref)}
            )
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400 and not (response or {}).get("content"):
                    responses[status] = {
                        **(response or {}),
                        "description": (response or {}).get("description", "error"),
                        "content": _json_content(error_ref),
                    }
    return spec


class SpecChecker:
    """Validates one `Exchange` at a time; thread-safe."""

    def __init__(self, spec_path: str | Path) -> None:
        import yaml
        from openapi_core import OpenAPI

        self.spec_path = Path(spec_path)
        with self.spec_path.open(encoding="utf-8") as handle:
            published = yaml.safe_load(handle)
        self._openapi = OpenAPI.from_dict(with_overlay(published))
        self._lock = threading.Lock()

    def problems(self, exchange: Exchange) -> list[str]:
        from openapi_core.testing import MockRequest, MockResponse

        where = f"{exchange.method} {exchange.path} -> {exchange.status}"
        if not exchange.path.startswith("/v2/"):
            return []
        if exchange.fault == "malformed":
            try:
                json.loads(exchange.body)
            except ValueError:
                return []
            return [f"{where}: the malformed fault sent valid JSON"]
        request = MockRequest(
            SPEC_HOST,
            exchange.method.lower(),
            exchange.path,
            args=dict(parse_qsl(exchange.query)),
        )
        response = MockResponse(
            exchange.body,
            status_code=exchange.status,
            headers=exchange.headers,
            content_type=exchange.headers.get("content-type", "application/json").split(";")[0],
        )
        try:
            with self._lock:
                self._openapi.validate_response(request, response)
        except Exception as exc:  # openapi-core raises many types; all are findings
            detail = "; ".join(str(e) for e in getattr(exc, "schema_errors", ()) or [exc])
            return [f"{where}: {type(exc).__name__}: {detail}"]
        return []


@lru_cache(maxsize=4)
def checker_for(spec_path: str) -> SpecChecker:
    """One checker per spec file per process (parsing the spec takes about a second)."""
    return SpecChecker(spec_path)


class ContractRecorder:
    """An `on_exchange` hook: records every exchange; `assert_valid()` checks them all.

    Without the spec (`spec_path` missing) it only records, and `checker` is None.
    """

    def __init__(self, spec_path: str | Path | None = None) -> None:
        path = Path(spec_path) if spec_path is not None else default_spec_path()
        self.spec_path = path
        self.checker = checker_for(str(path)) if path.is_file() else None
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def __call__(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def problems(self, exchanges: Iterable[Exchange] | None = None) -> list[str]:
        if self.checker is None:
            return []
        with self._lock:
            todo = list(self.exchanges if exchanges is None else exchanges)
        return [p for exchange in todo for p in self.checker.problems(exchange)]

    def assert_valid(self) -> None:
        found = self.problems()
        if found:
            raise AssertionError(
                f"{len(found)} sandbox response(s) do not match {self.spec_path}:\n"
                + "\n".join(found)
            )
