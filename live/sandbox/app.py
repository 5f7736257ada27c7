"""The sandbox's HTTP face: Alpaca's Trading API routes and the Market Data API's daily bars
(FastAPI) behind one ASGI gate.

The gate, outermost, does for every request what Alpaca's edge does: count it against the
per-minute rate limit (only /v2 requests count; every response carries the
X-Ratelimit-* headers), check the APCA-API-KEY-ID / APCA-API-SECRET-KEY headers, and apply
injected faults. It also hands each finished request/response pair to `on_exchange`, the
hook tests use to validate every answer against Alpaca's OpenAPI spec. Credentials are
never recorded or logged.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from live.sandbox.broker import BAR_LIMIT_DEFAULT, AlpacaError, SandboxBroker
from live.sandbox.clock import parse_instant
from live.sandbox.faults import FAULT_MESSAGES, FaultBook, RateLimiter, parse_fault

_log = logging.getLogger("live.sandbox")
UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}
SHUTTING_DOWN_STATUS = 503
SHUTTING_DOWN = {
    "code": 50310000,
    "message": "the sandbox is shutting down: send the request again once it is back",
}
_SECRET_HEADERS = {"apca-api-key-id", "apca-api-secret-key", "authorization"}


@dataclass
class Exchange:
    """One request and the response the sandbox sent, as the client saw it."""

    method: str
    path: str
    query: str
    request_body: bytes
    status: int
    headers: dict[str, str]
    body: bytes
    fault: str | None = None  # the injected fault that shaped this response, if any
    request_headers: dict[str, str] = field(default_factory=dict)  # credentials removed

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class Gate:
    """ASGI middleware: rate limit, auth, faults, rate-limit headers, recording."""

    def __init__(
        self,
        app: Any,
        *,
        key: str,
        secret: str,
        limiter: RateLimiter,
        faults: FaultBook,
        on_exchange: Callable[[Exchange], None] | None = None,
    ) -> None:
        self.app = app
        self._key = key.encode()
        self._secret = secret.encode()
        self.limiter = limiter
        self.faults = faults
        self.on_exchange = on_exchange
        # set by the server that runs this app: True once it is shutting down
        self.stopping: Callable[[], bool] = lambda: False

    async def hold(self, seconds: float) -> bool:
        """Sleep `seconds` (an injected delay) unless the server starts shutting down
        first; returns False when cut short by a shutdown."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.stopping():
                return False
            await asyncio.sleep(min(left, 0.05))
        return not self.stopping()

    def _authorized(self, headers: dict[str, str]) -> bool:
        key = headers.get("apca-api-key-id", "").encode()
        secret = headers.get("apca-api-secret-key", "").encode()
        # both comparisons always run: no timing hint about which one failed
        ok_key = hmac.compare_digest(key, self._key)
        ok_secret = hmac.compare_digest(secret, self._secret)
        return ok_key and ok_secret

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        counted = path.startswith("/v2/")
        if counted:
            allowed, rate_headers = self.limiter.hit()
        else:
            allowed, rate_headers = True, self.limiter.peek()

        request_chunks: list[bytes] = []

        async def recording_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                request_chunks.append(message.get("body", b""))
            return message

        status, out_headers, body, fault_label = 500, [], b"", None
        if not allowed:
            code, message = FAULT_MESSAGES[429]
            status, body = 429, _json_bytes({"code": code, "message": message})
        elif not self._authorized(headers):
            status, body = 401, _json_bytes(UNAUTHORIZED)
        else:
            fault = self.faults.take(method, path) if counted else None
            if fault is not None:
                fault_label = fault.kind if fault.kind != "status" else f"status {fault.status}"
            if fault is not None and fault.kind == "status":
                code, message = FAULT_MESSAGES[fault.status or 500]
                status, body = fault.status or 500, _json_bytes({"code": code, "message": message})
            elif fault is not None and fault.kind == "delay" and not await self.hold(fault.seconds):
                status, body = SHUTTING_DOWN_STATUS, _json_bytes(SHUTTING_DOWN)
            else:
                if fault is not None and fault.kind == "timeout_after_accept":
                    scope.setdefault("state", {})["timeout_after_accept"] = fault.seconds
                    scope["state"]["gate"] = self
                status, out_headers, body = await self._run(scope, recording_receive)
                if fault is not None and fault.kind == "malformed":
                    body = body[: max(1, len(body) // 2)] if body else b'{"code":'
                    status = 200 if status == 204 else status

        kept = [
            (k, v)
            for k, v in out_headers
            if k.lower() not in (b"content-length", b"content-type")
            and not k.lower().startswith(b"x-ratelimit")
        ]
        content_type = b"application/json; charset=utf-8"
        final_headers = [
            *kept,
            *[(k.encode(), v.encode()) for k, v in rate_headers.items()],
        ]
        if status != 204:
            final_headers += [(b"content-type", content_type)]
            final_headers += [(b"content-length", str(len(body)).encode())]
        else:
            body = b""
        if fault_label is not None:
            final_headers.append((b"x-sandbox-fault", fault_label.encode()))
        if self.on_exchange is not None:  # before sending: whoever sees the answer finds it
            self._record(
                Exchange(
                    method=method,
                    path=path,
                    query=scope.get("query_string", b"").decode("latin-1"),
                    request_body=b"".join(request_chunks),
                    status=status,
                    headers={
                        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in final_headers
                    },
                    body=body,
                    fault=fault_label,
                    request_headers={k: v for k, v in headers.items() if k not in _SECRET_HEADERS},
                )
            )
        await send({"type": "http.response.start", "status": status, "headers": final_headers})
        await send({"type": "http.response.body", "body": body})

    def _record(self, exchange: Exchange) -> None:
        try:
            self.on_exchange(exchange)  # type: ignore[misc]
        except Exception:  # a broken hook must not break the server
            _log.exception("on_exchange hook failed")

    async def _run(self, scope: dict, receive: Callable) -> tuple[int, list, bytes]:
        """Run the app, buffering its response (so headers and body can be rewritten)."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def buffer(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, buffer)
        except Exception:  # a sandbox bug: answer as Alpaca's 500, keep serving
            _log.exception("sandbox error on %s %s", scope["method"], scope["path"])
            code, message = FAULT_MESSAGES[500]
            return 500, [], _json_bytes({"code": code, "message": message})
        return int(start.get("status", 500)), list(start.get("headers", [])), b"".join(chunks)


def _alpaca(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


async def _json_body(request: Request, *, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise AlpacaError(400, 40010000, "request body format is invalid")
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise AlpacaError(400, 40010000, "request body format is invalid") from None


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise AlpacaError(422, 40010001, f"{name} must be an integer") from None


def _bool_param(request: Request, name: str) -> bool:
    text = (request.query_params.get(name) or "false").lower()
    if text not in ("true", "false"):
        raise AlpacaError(422, 40010001, f"{name} must be true or false")
    return text == "true"


async def _off_loop(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run blocking broker work (SQLite, pandas) in a worker thread, so one slow request
    never stalls the others on the event loop."""
    return await run_in_threadpool(functools.partial(fn, *args, **kwargs))


def create_app(
    broker: SandboxBroker,
    *,
    key: str,
    secret: str,
    rate_limit: int = 200,
    limiter: RateLimiter | None = None,
    on_exchange: Callable[[Exchange], None] | None = None,
) -> Gate:
    """The ASGI application: Alpaca's routes + the sandbox's own, behind the `Gate`."""
    api = FastAPI(
        title="tradeship sandbox (Alpaca-compatible paper broker)",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    faults = FaultBook()
    limiter = limiter or RateLimiter(rate_limit)

    def allowed_methods(path: str) -> str:
        """The `Allow` header of a 405: every method some route serves at `path`."""
        methods: set[str] = set()
        for route in api.router.routes:
            regex = getattr(route, "path_regex", None)
            if regex is not None and regex.match(path):
                methods |= set(getattr(route, "methods", None) or ())
        return ", ".join(sorted(methods))

    @api.exception_handler(AlpacaError)
    async def _alpaca_error(request: Request, exc: AlpacaError) -> JSONResponse:
        return _alpaca(exc.body(), exc.status)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return JSONResponse(
                {"code": 40510000, "message": "method not allowed"},
                status_code=405,
                headers={"Allow": allowed_methods(request.url.path)},
            )
        return _alpaca({"code": 40410000, "message": "endpoint not found"}, exc.status_code)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _alpaca({"code": 40010001, "message": "invalid request"}, 422)

    # -- Alpaca Trading API ---------------------------------------------------------------
    @api.get("/v2/account")
    async def get_account() -> JSONResponse:
        return _alpaca(await _off_loop(broker.account))

    @api.get("/v2/clock")
    async def get_clock() -> JSONResponse:
        return _alpaca(await _off_loop(broker.clock))

    @api.get("/v2/calendar")
    async def get_calendar(request: Request) -> JSONResponse:
        q = request.query_params
        return _alpaca(await _off_loop(broker.calendar, q.get("start"), q.get("end")))

    @api.post("/v2/orders")
    async def post_order(request: Request) -> JSONResponse:
        order = await _off_loop(broker.submit_order, await _json_body(request))
        delay = getattr(request.state, "timeout_after_accept", None)
        if delay:  # the order is stored; the answer comes too late (or at a shutdown)
            await request.state.gate.hold(delay)
        return _alpaca(order)

    @api.get("/v2/orders")
    async def get_orders(request: Request) -> JSONResponse:
        q = request.query_params
        symbols = q.get("symbols")
        return _alpaca(
            await _off_loop(
                broker.orders,
                status=q.get("status") or "open",
                limit=_int_param(request, "limit", 50),
                after=q.get("after"),
                until=q.get("until"),
                direction=q.get("direction") or "desc",
                symbols=symbols.split(",") if symbols else None,
                side=q.get("side"),
                nested=_bool_param(request, "nested"),
            )
        )

    @api.get("/v2/orders:by_client_order_id")
    async def get_order_by_client_id(request: Request) -> JSONResponse:
        client_order_id = request.query_params.get("client_order_id")
        if not client_order_id:
            raise AlpacaError(422, 40010001, "client_order_id is required")
        return _alpaca(await _off_loop(broker.order_by_client_order_id, client_order_id))

    @api.get("/v2/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> JSONResponse:
        nested = _bool_param(request, "nested")
        return _alpaca(await _off_loop(broker.order, order_id, nested))

    @api.patch("/v2/orders/{order_id}")
    async def patch_order(order_id: str, request: Request) -> JSONResponse:
        body = await _json_body(request)
        return _alpaca(await _off_loop(broker.replace_order, order_id, body))

    @api.delete("/v2/orders/{order_id}")
    async def delete_order(order_id: str) -> Response:
        await _off_loop(broker.cancel_order, order_id)
        return Response(status_code=204)

    @api.delete("/v2/orders")
    async def delete_orders() -> JSONResponse:
        return _alpaca(await _off_loop(broker.cancel_all), 207)

    @api.get("/v2/positions")
    async def get_positions() -> JSONResponse:
        return _alpaca(await _off_loop(broker.positions))

    @api.delete("/v2/positions")
    async def delete_positions(request: Request) -> JSONResponse:
        cancel = _bool_param(request, "cancel_orders")
        return _alpaca(await _off_loop(broker.close_all_positions, cancel), 207)

    @api.get("/v2/positions/{symbol_or_asset_id}")
    async def get_position(symbol_or_asset_id: str) -> JSONResponse:
        return _alpaca(await _off_loop(broker.position, symbol_or_asset_id))

    @api.delete("/v2/positions/{symbol_or_asset_id}")
    async def delete_position(symbol_or_asset_id: str, request: Request) -> JSONResponse:
        q = request.query_params
        return _alpaca(
            await _off_loop(
                broker.close_position, symbol_or_asset_id, q.get("qty"), q.get("percentage")
            )
        )

    @api.get("/v2/assets")
    async def get_assets(request: Request) -> JSONResponse:
        q = request.query_params
        return _alpaca(
            await _off_loop(broker.assets, q.get("status"), q.get("asset_class"), q.get("exchange"))
        )

    @api.get("/v2/assets/{symbol_or_asset_id}")
    async def get_asset(symbol_or_asset_id: str) -> JSONResponse:
        return _alpaca(await _off_loop(broker.asset, symbol_or_asset_id))

    async def _activities(request: Request, activity_types: str | None) -> JSONResponse:
        q = request.query_params
        return _alpaca(
            await _off_loop(
                broker.activities,
                activity_types=activity_types,
                date=q.get("date"),
                after=q.get("after"),
                until=q.get("until"),
                direction=q.get("direction"),
                page_size=_int_param(request, "page_size", 100),
                page_token=q.get("page_token"),
            )
        )

    @api.get("/v2/account/activities")
    async def get_activities(request: Request) -> JSONResponse:
        return await _activities(request, request.query_params.get("activity_types"))

    @api.get("/v2/account/activities/{activity_type}")
    async def get_activities_of_type(activity_type: str, request: Request) -> JSONResponse:
        return await _activities(request, activity_type or "-")

    @api.get("/v2/account/portfolio/history")
    async def get_portfolio_history(request: Request) -> JSONResponse:
        q = request.query_params
        return _alpaca(
            await _off_loop(
                broker.portfolio_history, q.get("period"), q.get("timeframe"), q.get("date_end")
            )
        )

    # -- Alpaca Market Data API (daily bars) -----------------------------------------------
    def _bar_query(request: Request) -> dict[str, Any]:
        q = request.query_params
        return {
            "timeframe": q.get("timeframe"),
            "start": q.get("start"),
            "end": q.get("end"),
            "limit": _int_param(request, "limit", BAR_LIMIT_DEFAULT),
            "page_token": q.get("page_token"),
            "adjustment": q.get("adjustment"),
            "feed": q.get("feed"),
            "sort": q.get("sort"),
        }

    @api.get("/v2/stocks/bars")
    async def get_stock_bars(request: Request) -> JSONResponse:
        symbols = request.query_params.get("symbols")
        return _alpaca(await _off_loop(broker.bars, symbols=symbols, **_bar_query(request)))

    @api.get("/v2/stocks/{symbol}/bars")
    async def get_symbol_bars(symbol: str, request: Request) -> JSONResponse:
        return _alpaca(await _off_loop(broker.symbol_bars, symbol, **_bar_query(request)))

    # -- sandbox control ------------------------------------------------------------------
    def _state() -> dict[str, Any]:
        return {
            **broker.state(),
            "faults": faults.pending(),
            "rate_limit": limiter.peek(),
        }

    @api.post("/sandbox/advance")
    async def advance(request: Request) -> JSONResponse:
        body = await _json_body(request, required=False)
        sessions = body.get("sessions", 1) if isinstance(body, dict) else None
        if not isinstance(sessions, int) or isinstance(sessions, bool) or sessions < 1:
            raise AlpacaError(422, 40010001, 'body is {"sessions": N} (N >= 1, default 1)')

        def run() -> dict[str, Any]:
            return {**broker.advance(sessions), "state": _state()}

        return _alpaca(await _off_loop(run))

    @api.post("/sandbox/clock")
    async def set_clock(request: Request) -> JSONResponse:
        body = await _json_body(request)
        text = body.get("time") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise AlpacaError(422, 40010001, 'body is {"time": "2024-03-01T17:00:00-05:00"}')
        try:
            when = parse_instant(text)
        except ValueError:
            raise AlpacaError(422, 40010001, f"not an ISO 8601 time: {text!r}") from None

        def run() -> dict[str, Any]:
            return {**broker.set_clock(when), "state": _state()}

        return _alpaca(await _off_loop(run))

    @api.post("/sandbox/faults")
    async def add_fault(request: Request) -> JSONResponse:
        try:
            faults.add(parse_fault(await _json_body(request)))
        except ValueError as exc:
            raise AlpacaError(422, 40010001, str(exc)) from None
        return _alpaca({"faults": faults.pending()})

    @api.delete("/sandbox/faults")
    async def clear_faults() -> JSONResponse:
        faults.clear()
        return _alpaca({"faults": []})

    @api.get("/sandbox/state")
    async def get_state() -> JSONResponse:
        return _alpaca(await _off_loop(_state))

    return Gate(
        api, key=key, secret=secret, limiter=limiter, faults=faults, on_exchange=on_exchange
    )
