"""Check the sandbox's HTTP answers against Alpaca's published Trading and Market Data specs.

The spec is `../shared/specs/alpaca-trading-openapi.yaml` from the project root (it is
never copied into the project). Validation uses openapi-core (a dev dependency, imported
only here). The published spec has gaps, so the contract is the spec plus this overlay,
and nothing else:

1. Three endpoints alpaca-py calls that the spec omits get a response schema built from
   the spec's own components: `GET /v2/orders:by_client_order_id` → `Order`,
   `GET /v2/assets/{symbol_or_asset_id}` → `Assets`, `GET /v2/assets` → `[Assets]`.
2. Error answers: the spec documents few error statuses and no error body. Every
   operation gets a `default` response, and every documented >= 400 response without a
   body gets one, of Alpaca's documented error shape `{"code": int, "message": str}`.

Market Data answers (`/v2/stocks/*`) are checked against
`../shared/specs/alpaca-market-data-openapi.yaml` (the file beside the trading spec) with
the same error overlay (2), plus one documented deviation:

3. `Bar.n` (trade count) and `Bar.vw` (VWAP) are marked nullable. The sandbox's data has
   neither; alpaca-py's `Bar` model requires both keys to be present (it accepts null), so
   the sandbox sends null instead of inventing numbers.

4. A 405 (a method the spec has no operation for) is checked for an `Allow` header and
   the error body of (2) only.
5. `PositionClosedReponse.status` (DELETE /v2/positions) is an HTTP status: an integer,
   as in the spec's own `CanceledOrderResponse` and alpaca-py's `ClosePositionResponse`
   (the spec types it as a string).
6. `OrderStatus` gains `held`, the status Alpaca gives a bracket's exit legs until the
   entry fills (alpaca-py's `OrderStatus.HELD`); the spec's enum omits it.

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
MARKET_DATA_SPEC_NAME = "alpaca-market-data-openapi.yaml"  # beside the trading spec
MARKET_DATA_HOST = "https://data.alpaca.markets"  # the market data spec's server
MARKET_DATA_PREFIX = "/v2/stocks/"

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
    statuses = spec.get("components", {}).get("schemas", {}).get("OrderStatus", {})
    if "enum" in statuses and "held" not in statuses["enum"]:  # overlay 6
        statuses["enum"] = [*statuses["enum"], "held"]
    closed = spec.get("components", {}).get("schemas", {}).get("PositionClosedReponse", {})
    if "status" in closed.get("properties", {}):  # overlay 5
        closed["properties"]["status"] = {**closed["properties"]["status"], "type": "integer"}
    paths.setdefault(
        "/v2/assets",
        {
            "get": {
                "operationId": "sandboxOverlayGetAssets",
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string"}}
                    for name in ("status", "asset_class", "exchange", "attributes")
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": _json_content(
                            {"type": "array", "items": {"$ref": "#/components/schemas/Assets"}}
                        ),
                    }
                },
            }
        },
    )
    return _with_error_overlay(spec)


def with_market_data_overlay(spec: dict[str, Any]) -> dict[str, Any]:
    """The published Market Data spec plus overlays 2 and 3 of the module docstring."""
    spec = copy.deepcopy(spec)
    bar = spec.get("components", {}).get("schemas", {}).get("Bar", {})
    for name in ("n", "vw"):
        if name in bar.get("properties", {}):
            bar["properties"][name] = {**bar["properties"][name], "nullable": True}
    return _with_error_overlay(spec)


def _with_error_overlay(spec: dict[str, Any]) -> dict[str, Any]:
    """Overlay 2: Alpaca's `{"code", "message"}` body for every error answer (in place)."""
    spec.setdefault("components", {}).setdefault("schemas", {})["AlpacaError"] = ALPACA_ERROR
    error_ref = {"$ref": "#/components/schemas/AlpacaError"}
    for item in spec.setdefault("paths", {}).values():
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
    """Validates one `Exchange` at a time; thread-safe.

    `market_data=True` reads the Market Data spec (its overlay, its server) instead of the
    Trading API's.
    """

    def __init__(self, spec_path: str | Path, market_data: bool = False) -> None:
        import yaml
        from openapi_core import OpenAPI

        self.spec_path = Path(spec_path)
        with self.spec_path.open(encoding="utf-8") as handle:
            published = yaml.safe_load(handle)
        overlay = with_market_data_overlay if market_data else with_overlay
        self._host = MARKET_DATA_HOST if market_data else SPEC_HOST
        self._openapi = OpenAPI.from_dict(overlay(published))
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
        if exchange.status == 405:  # a method the spec has no operation for
            return _method_not_allowed_problems(where, exchange)
        request = MockRequest(
            self._host,
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


def _method_not_allowed_problems(where: str, exchange: Exchange) -> list[str]:
    """Overlay 4: a 405 has no operation in the spec to check against; it must carry an
    `Allow` header and Alpaca's error body."""
    problems = [] if exchange.headers.get("allow") else [f"{where}: no Allow header"]
    try:
        body = json.loads(exchange.body)
    except ValueError:
        return [*problems, f"{where}: the body is not JSON"]
    if not (
        isinstance(body, dict)
        and isinstance(body.get("code"), int)
        and isinstance(body.get("message"), str)
    ):
        problems.append(f"{where}: the body is not Alpaca's {{code, message}}")
    return problems


@lru_cache(maxsize=4)
def checker_for(spec_path: str, market_data: bool = False) -> SpecChecker:
    """One checker per spec file per process (parsing the spec takes about a second)."""
    return SpecChecker(spec_path, market_data)


class ContractRecorder:
    """An `on_exchange` hook: records every exchange; `assert_valid()` checks them all.

    `/v2/stocks/*` exchanges are checked against the Market Data spec
    (`market_data_spec_path`, default: `alpaca-market-data-openapi.yaml` beside
    `spec_path`), every other `/v2` exchange against the Trading API spec (`spec_path`).
    Without a spec file the exchanges it would check are only recorded (`checker` /
    `market_data_checker` is None).
    """

    def __init__(
        self,
        spec_path: str | Path | None = None,
        market_data_spec_path: str | Path | None = None,
    ) -> None:
        path = Path(spec_path) if spec_path is not None else default_spec_path()
        self.spec_path = path
        self.market_data_spec_path = (
            Path(market_data_spec_path)
            if market_data_spec_path is not None
            else path.parent / MARKET_DATA_SPEC_NAME
        )
        self.checker = checker_for(str(path)) if path.is_file() else None
        self.market_data_checker = (
            checker_for(str(self.market_data_spec_path), True)
            if self.market_data_spec_path.is_file()
            else None
        )
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()

    def checker_for_path(self, path: str) -> SpecChecker | None:
        """The checker whose spec covers `path`."""
        if path.startswith(MARKET_DATA_PREFIX):
            return self.market_data_checker
        return self.checker

    def __call__(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def problems(self, exchanges: Iterable[Exchange] | None = None) -> list[str]:
        with self._lock:
            todo = list(self.exchanges if exchanges is None else exchanges)
        found = []
        for exchange in todo:
            checker = self.checker_for_path(exchange.path)
            if checker is not None:
                found.extend(checker.problems(exchange))
        return found

    def assert_valid(self) -> None:
        found = self.problems()
        if found:
            raise AssertionError(
                f"{len(found)} sandbox response(s) do not match {self.spec_path} "
                f"(or {self.market_data_spec_path.name}):\n" + "\n".join(found)
            )
