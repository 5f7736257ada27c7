"""Injected faults and the rate limiter: the parts of a real broker that tests must survive.

Both live in memory only (a restart clears them); the orders and the clock are in SQLite.
"""

from __future__ import annotations

import fnmatch
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

FAULT_STATUSES = (429, 500, 502, 503, 504)
FAULT_MESSAGES = {
    429: (42910000, "rate limit exceeded"),
    500: (50010000, "internal server error occurred"),
    502: (50210000, "bad gateway"),
    503: (50310000, "service unavailable"),
    504: (50410000, "gateway timeout"),
}
ORDER_PATH = "/v2/orders"


@dataclass
class Fault:
    """One injected fault, used by the next `times` matching /v2 requests.

    kind is "status" (answer `status` without running the request), "delay" (sleep
    `seconds`, then answer normally), "malformed" (run the request, then send a truncated,
    invalid JSON body) or "timeout_after_accept" (POST /v2/orders only: store the order,
    then sleep `seconds` before answering). `paths` are glob patterns on the URL path
    (default: every /v2 path); `methods` limits the HTTP methods (default: all).
    """

    kind: str
    times: int = 1
    status: int | None = None
    seconds: float = 0.0
    paths: list[str] = field(default_factory=lambda: ["/v2/*"])
    methods: list[str] | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.kind == "timeout_after_accept":
            return method == "POST" and path == ORDER_PATH
        if self.methods is not None and method not in self.methods:
            return False
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.paths)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_fault(body: Any) -> Fault:
    """Fault from the JSON of POST /sandbox/faults; ValueError says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("a fault is a JSON object")
    kinds = [k for k in ("status", "delay", "malformed", "timeout_after_accept") if k in body]
    if len(kinds) != 1:
        raise ValueError(
            "give exactly one of status, delay, malformed, timeout_after_accept "
            '(e.g. {"status": 500, "times": 2})'
        )
    kind = kinds[0]
    times = body.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise ValueError("times must be an integer >= 1")
    paths = body.get("paths", ["/v2/*"])
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise ValueError('paths must be a non-empty list of path patterns, e.g. ["/v2/orders*"]')
    methods = body.get("methods")
    if methods is not None:
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ValueError('methods must be a list such as ["POST"]')
        methods = [m.upper() for m in methods]
    fault = Fault(kind=kind, times=times, paths=paths, methods=methods)
    value = body[kind]
    if kind == "status":
        if value not in FAULT_STATUSES:
            raise ValueError(f"status must be one of {list(FAULT_STATUSES)}")
        fault.status = int(value)
    elif kind == "malformed":
        if value is not True:
            raise ValueError('use {"malformed": true}')
    else:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{kind} is a number of seconds > 0")
        if value > 300:
            raise ValueError(f"{kind} is at most 300 seconds")
        fault.seconds = float(value)
    return fault


class FaultBook:
    """Pending faults, first in first out; each request takes at most one."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None


class RateLimiter:
    """Alpaca's per-minute budget: `limit` requests in each 60-second window.

    The window opens with the first request after the previous one ended; the headers
    say how many requests are left in it and when (unix seconds) it resets.
    """

    def __init__(self, limit: int = 200, clock: Callable[[], float] = time.time) -> None:
        if limit < 1:
            raise ValueError("rate limit must be >= 1")
        self.limit = limit
        self._clock = clock
        self._window_start = -math.inf
        self._count = 0
        self._lock = threading.Lock()

    def _roll(self, now: float) -> None:
        if now >= self._window_start + 60:
            self._window_start, self._count = now, 0

    def hit(self) -> tuple[bool, dict[str, str]]:
        """Count one request: (allowed, the X-Ratelimit-* headers)."""
        with self._lock:
            now = self._clock()
            self._roll(now)
            self._count += 1
            allowed = self._count <= self.limit
            return allowed, self._headers()

    def peek(self) -> dict[str, str]:
        """The headers without counting a request."""
        with self._lock:
            self._roll(self._clock())
            return self._headers()

    def _headers(self) -> dict[str, str]:
        return {
            "X-Ratelimit-Limit": str(self.limit),
            "X-Ratelimit-Remaining": str(max(0, self.limit - self._count)),
            "X-Ratelimit-Reset": str(math.ceil(self._window_start + 60)),
        }
