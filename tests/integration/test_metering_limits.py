"""Tokens per minute, per team and per key, through the real Envoy, workers and SQLite ledger.

Admission reserves the worst case, the prompt estimated from the body size (one token per 3
bytes) plus max_tokens, and the tokens an answer really used replace the reservation once it
is over. So the bodies below are built to reserve an exact number of tokens, and each
admitted request is waited for until its real tokens are charged and its reservation is
released: every refusal then falls exactly on the limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from control_plane.keys import create_key
from tests.support.gateway import Gateway, start_gateway
from tests.support.metering import tokens_of, usage_record, wait_released

pytestmark = pytest.mark.integration

POOLED_A, POOLED_A_HASH = create_key("pooled")
POOLED_B, POOLED_B_HASH = create_key("pooled")
APART_C, APART_C_HASH = create_key("apart")
APART_D, APART_D_HASH = create_key("apart")
LIMIT = 300
# The mock answers "Hello there" with 2 prompt and 10 completion tokens (it counts words).
USED = 12

POLICY = f"""
providers:
  demo: {{kind: mock}}
models:
  mock: {{targets: [{{provider: demo}}]}}
teams:
  pooled:
    keys: [{POOLED_A_HASH}, {POOLED_B_HASH}]
    rate_limit: {{tokens_per_minute: {LIMIT}}}
  apart:
    keys: [{APART_C_HASH}, {APART_D_HASH}]
    key_rate_limit: {{tokens_per_minute: {LIMIT}}}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    running = start_gateway(POLICY, tmp_path_factory.mktemp("metering-limits"))
    yield running
    running.stop()


def body_reserving(tokens: int, api: str) -> bytes:
    """A request body whose admission reserves exactly `tokens`."""
    for max_tokens in range(1, tokens):
        fields = {"model": "mock", "max_tokens": max_tokens,
                  "messages": [{"role": "user", "content": "Hello there"}]}
        if api == "openai":
            fields = {**fields, "user": "metering-test"}  # a different length than Anthropic's
        body = orjson.dumps(fields)
        if math.ceil(len(body) / 3) + max_tokens == tokens:
            return body
    raise AssertionError(f"no body reserves {tokens} tokens")


def send(gateway: Gateway, key: str, tokens: int, api: str = "openai") -> httpx.Response:
    """A request reserving `tokens`; once admitted, waited for until its real tokens are
    charged and its reservation is released."""
    if api == "openai":
        path, headers = "/v1/chat/completions", {"authorization": f"Bearer {key}"}
    else:
        path, headers = "/v1/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"}
    response = httpx.post(f"{gateway.url}{path}", content=body_reserving(tokens, api),
                          headers={**headers, "content-type": "application/json"}, timeout=10)
    if response.status_code == 200:
        row = usage_record(gateway.ledger_path, response.headers["x-request-id"])
        assert tokens_of(row)[:2] == (2, 10)
        wait_released(gateway.ledger_path)
    return response


def refused(gateway: Gateway, key: str, tokens: int, api: str = "openai") -> tuple[str, int]:
    """A request that must be refused for tokens per minute: its message, and the Retry-After,
    which must name the end of the minute the worker refused in."""
    before = time.time()
    response = send(gateway, key, tokens, api)
    after = time.time()
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    minute_end = (before // 60 + 1) * 60
    assert math.ceil(minute_end - after) <= retry_after <= math.ceil(minute_end - before)
    body = response.json()
    if api == "openai":
        assert (body["error"]["type"], body["error"]["code"]) == ("rate_limit_error",
                                                                  "rate_limit_exceeded")
        message: str = body["error"]["message"]
    else:
        assert (body["type"], body["error"]["type"]) == ("error", "rate_limit_error")
        message = body["error"]["message"]
    end = datetime.fromtimestamp(minute_end, UTC)
    assert message.endswith(f"it resets at {end.isoformat()}."), message
    return message, retry_after


@pytest.fixture(autouse=True)
def one_minute() -> None:
    """A test's requests must fall inside one rate-limit minute (fixed UTC minutes)."""
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)


def test_tokens_per_minute_per_key(gateway: Gateway) -> None:
    assert send(gateway, APART_C, 200).status_code == 200  # 0 + 200 reserved: admitted
    # Counted now: the 12 tokens the answer used. 12 + 289 would pass the limit...
    message, _ = refused(gateway, APART_C, LIMIT - USED + 1)
    assert message.startswith(f"Rate limit of {LIMIT} tokens per minute for "
                              f"key={APART_C_HASH} reached;")
    # ... 12 + 288 reaches it exactly,
    assert send(gateway, APART_C, LIMIT - USED).status_code == 200
    # and another key of the same team has its own count.
    assert send(gateway, APART_D, LIMIT - USED + 1).status_code == 200
    # An Anthropic client is refused in its own schema: 24 used, 24 + 277 > 300.
    refused(gateway, APART_C, LIMIT - 2 * USED + 1, api="anthropic")


def test_tokens_per_minute_per_team(gateway: Gateway) -> None:
    assert send(gateway, POOLED_A, 200).status_code == 200
    # The team's keys share one count: B is refused for what A used (12 + 289 > 300),
    message, _ = refused(gateway, POOLED_B, LIMIT - USED + 1, api="anthropic")
    assert message.startswith(f"Rate limit of {LIMIT} tokens per minute for team=pooled "
                              "reached;")
    assert send(gateway, POOLED_B, LIMIT - USED, api="anthropic").status_code == 200
    # and A for what B used: 24 + 277 > 300.
    refused(gateway, POOLED_A, LIMIT - 2 * USED + 1)
    assert send(gateway, POOLED_A, LIMIT - 2 * USED).status_code == 200


def test_a_request_reserving_more_than_the_limit_is_refused(gateway: Gateway) -> None:
    refused(gateway, APART_D, LIMIT + 1)
