"""Run the sandbox: `SandboxServer` in a background thread (tests, scripts), `serve` blocking
(the `tradeship sandbox` command). Both are real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from live.sandbox.app import Exchange, Gate, create_app
from live.sandbox.broker import SandboxBroker

DEFAULT_KEY = "PKSANDBOX0000000000X"
DEFAULT_SECRET = "sandbox-secret-for-the-local-paper-broker"
DEFAULT_PORT = 8765
HOST = "127.0.0.1"


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(app: Gate, log_level: str, access_log: bool) -> Any:
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        lifespan="off",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    return uvicorn.Server(config)


class SandboxServer:
    """The sandbox on a free port of 127.0.0.1, in a background thread.

    ```python
    with SandboxServer(tmp_path / "sandbox.db", date="2024-03-01") as sandbox:
        client = TradingClient(sandbox.key, sandbox.secret, paper=True,
                               url_override=sandbox.base_url)
        client.get_account()
    ```

    `db_path=None` uses a temporary file removed at `stop()`. `on_exchange` sees every
    request/response pair (credentials removed). The other arguments are those of
    `SandboxBroker` and `create_app`.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        source: str | None = None,
        cash: float | None = None,
        date: str | dt.date | None = None,
        symbols: list[str] | None = None,
        account: str | None = None,
        key: str = DEFAULT_KEY,
        secret: str = DEFAULT_SECRET,
        port: int = 0,
        rate_limit: int = 200,
        on_exchange: Callable[[Exchange], None] | None = None,
        log_level: str = "warning",
    ) -> None:
        self.db_path = None if db_path is None else Path(db_path)
        self.key = key
        self.secret = secret
        self.port = port
        self._broker_args = {
            "source": source,
            "cash": cash,
            "date": date,
            "symbols": symbols,
            "account": account,
        }
        self._rate_limit = rate_limit
        self._on_exchange = on_exchange
        self._log_level = log_level
        self._tmpdir: str | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self.broker: SandboxBroker | None = None
        self.app: Gate | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def trading_client(self) -> Any:
        """alpaca-py's TradingClient pointed at this sandbox."""
        from alpaca.trading.client import TradingClient

        return TradingClient(self.key, self.secret, paper=True, url_override=self.base_url)

    def start(self, timeout: float = 15.0) -> SandboxServer:
        if self._thread is not None:
            raise RuntimeError("the sandbox is already running")
        if self.db_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="tradeship-sandbox-")
            self.db_path = Path(self._tmpdir) / "sandbox.db"
        self.broker = SandboxBroker(self.db_path, **self._broker_args)
        try:
            self.app = create_app(
                self.broker,
                key=self.key,
                secret=self.secret,
                rate_limit=self._rate_limit,
                on_exchange=self._on_exchange,
            )
            sock = _bind(HOST, self.port)
            self.port = sock.getsockname()[1]
            self._server = _uvicorn_server(self.app, self._log_level, access_log=False)
            self.app.stopping = lambda: bool(self._server is None or self._server.should_exit)
            self._thread = threading.Thread(
                target=self._server.run,
                kwargs={"sockets": [sock]},
                name=f"tradeship-sandbox-{self.port}",
                daemon=True,
            )
            self._thread.start()
            deadline = time.monotonic() + timeout
            while not self._server.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox did not start on {self.base_url}")
                time.sleep(0.01)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, close the database, clean up. Requests in flight finish; one held
        by an injected delay is answered at once with Alpaca's 503 error body."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread, self._server = None, None
        if self.broker is not None:
            self.broker.close()
            self.broker = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir, self.db_path = None, None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_until_signal(server: Any, sock: socket.socket) -> None:
    """uvicorn stops gracefully on SIGINT/SIGTERM, then re-raises the signal: absorb it."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def serve(
    port: int = DEFAULT_PORT,
    source: str | None = None,
    cash: float | None = None,
    date: str | None = None,
    db_path: str | Path = "sandbox.db",
    key: str = DEFAULT_KEY,
    secret: str = DEFAULT_SECRET,
    *,
    symbols: list[str] | None = None,
    account: str | None = None,
    announce: Callable[[str], None] = print,
) -> int:
    """Serve the sandbox on 127.0.0.1:`port` until Ctrl-C (or SIGTERM); returns 0.

    Prints where it listens, the key id, the simulated time and the account; the secret is
    printed only when it is the built-in sandbox default.
    """
    broker = SandboxBroker(
        db_path, source=source, cash=cash, date=date, symbols=symbols, account=account
    )
    try:
        sock = _bind(HOST, port)
        url = f"http://{HOST}:{sock.getsockname()[1]}"
        app = create_app(broker, key=key, secret=secret)
        state = broker.state()
        secret_line = (
            f"  export APCA_API_SECRET_KEY={secret}"
            if secret == DEFAULT_SECRET
            else "  APCA_API_SECRET_KEY: the secret you configured (not shown)"
        )
        for line in (
            f"sandbox: Alpaca-compatible paper broker on {url}",
            f"  data {state['source']} ({state['data_first_day']}..{state['data_last_day']}),"
            f" database {state['db_path']}",
            f"  clock {state['now']} ({'open' if state['is_open'] else 'closed'}),"
            f" {state['account_type']} account, cash {state['cash']}, equity {state['equity']},"
            f" positions {len(state['positions'])}",
            f"  export APCA_API_BASE_URL={url}",
            f"  export APCA_API_KEY_ID={key}",
            secret_line,
            "  next session: curl -X POST -H 'APCA-API-KEY-ID: ...' -H 'APCA-API-SECRET-KEY: ...'"
            f" {url}/sandbox/advance",
            "Ctrl-C stops it; the database keeps everything for the next start.",
        ):
            announce(line)
        server = _uvicorn_server(app, "info", access_log=True)
        app.stopping = lambda: bool(server.should_exit)
        _run_until_signal(server, sock)
    finally:
        broker.close()
    announce("sandbox stopped")
    return 0
