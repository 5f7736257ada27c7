"""A bounded schemathesis run against the sandbox: no 5xx on any input, and every answer
conforms to Alpaca's published spec (plus the documented overlay of live.sandbox.contract).

Every operation of `../shared/specs/alpaca-trading-openapi.yaml` the sandbox implements
gets `EXAMPLES` generated requests (schemathesis 4 + hypothesis, derandomized so the run is
the same every time) sent over real HTTP to one sandbox. Skipped without the spec.

What is left out, and why (the spec cannot express it):
- operations the sandbox does not implement (`NOT_IMPLEMENTED`): watchlists and account
  configurations answer Alpaca's 404 body, which the spec does not list;
- check `positive_data_acceptance`: the spec cannot say which valid-looking requests
  Alpaca refuses by its rules (an unknown symbol, no buying power, an order id that does
  not exist, a closed position): those get Alpaca's 4xx;
- check `negative_data_rejection`: the spec types `qty`/`notional`/prices as strings,
  while alpaca-py sends JSON numbers, which Alpaca and the sandbox accept; and query
  parameters the spec types loosely are checked by the sandbox by value;
- checks `missing_required_header`, `ignored_auth`: run separately in test_sandbox_faults
  (401 for a missing or wrong key); here every request carries the sandbox's key;
- `max_response_time`: timing is not asserted in tests.
Kept: not_a_server_error, status_code_conformance, content_type_conformance,
response_schema_conformance, response_headers_conformance.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

SPEC = Path(__file__).resolve().parents[1].parent / "shared/specs/alpaca-trading-openapi.yaml"
EXAMPLES = 20  # per operation: bounded, about a minute for the whole run on 2 cores
NOT_IMPLEMENTED = ("/v2/watchlists", "/v2/account/configurations")

pytestmark = pytest.mark.skipif(not SPEC.is_file(), reason=f"Alpaca's spec not found at {SPEC}")


def _operations(schema):
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(NOT_IMPLEMENTED):
            yield operation


def test_no_server_error_and_every_answer_matches_the_spec(tmp_path):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    from live.sandbox import SandboxServer
    from live.sandbox.contract import with_overlay

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    schema = schemathesis.openapi.from_dict(
        with_overlay(yaml.safe_load(SPEC.read_text(encoding="utf-8")))
    )
    failures: dict[str, list[str]] = {}
    sent: dict[str, int] = {}
    statuses: dict[int, int] = {}
    started = time.monotonic()
    with SandboxServer(tmp_path / "fuzz.db", date="2024-03-01", rate_limit=1_000_000) as box:
        headers = {"APCA-API-KEY-ID": box.key, "APCA-API-SECRET-KEY": box.secret}
        for operation in _operations(schema):
            label = f"{operation.method.upper()} {operation.path}"
            sent[label] = 0

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case) -> None:
                where = f"{case.method.upper()} {case.operation.path}"
                response = case.call(base_url=box.base_url, headers=headers, timeout=30)
                sent[where] += 1
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                try:
                    case.validate_response(response, checks=checks, headers=headers)
                except Exception as exc:  # schemathesis groups failures; keep the text
                    failures.setdefault(where, []).append(f"{response.status_code}: {exc}"[:900])

            fuzz()
    seconds = time.monotonic() - started
    print(
        f"schemathesis: {sum(sent.values())} requests, {len(sent)} operations, "
        f"{seconds:.1f}s, statuses {dict(sorted(statuses.items()))}"
    )
    assert len(sent) == 19, sorted(sent)  # every implemented operation was exercised
    assert all(n > 0 for n in sent.values()), sent
    assert statuses.get(200, 0) > len(sent) and 401 not in statuses  # real answers, not auth
    server_errors = [f for found in failures.values() for f in found if f.startswith("5")]
    assert server_errors == []
    assert failures == {}
