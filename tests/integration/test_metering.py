"""Metering, keys, budgets and rate limits through the real Envoy, workers and SQLite ledger.

The fake provider replays recorded OpenAI and Anthropic replies of known usage; the policy sets
the prices, so every expected cost below is worked out by hand from the fixture's usage.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest

from control_plane.keys import create_key
from tests.fakes.provider_server import ProviderServer
from tests.support.gateway import Gateway, start_gateway
from tests.support.metering import burst, cost_of, poll, query, usage_record, wait_released

pytestmark = pytest.mark.integration

KEY, KEY_HASH = create_key("search")
OTHER_KEY, OTHER_HASH = create_key("tiny")
CHAT = [{"role": "user", "content": "Hello there"}]

POLICY = """
providers:
  oai: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1"}}
  claude: {{kind: anthropic, base_url: "http://127.0.0.1:{port}", api_key: env:TEST_KEY}}
  demo: {{kind: mock}}
models:
  gpt: {{targets: [{{provider: oai, model: gpt-4o-mini}}]}}
  claude: {{targets: [{{provider: claude, model: claude-sonnet-4-5}}]}}
  mock: {{targets: [{{provider: demo}}]}}
  mock-cheap: {{targets: [{{provider: demo, model: cheap}}]}}
  mock-capped: {{targets: [{{provider: demo, model: capped}}]}}
  mock-warned: {{targets: [{{provider: demo, model: cheap}}]}}
  gpt-warned: {{targets: [{{provider: oai, model: gpt-4o-mini}}]}}
prices:
  oai/gpt-4o-mini: {{input_per_mtok: 2, output_per_mtok: 8, cached_read_per_mtok: 1}}
  claude/claude-sonnet-4-5: {{input_per_mtok: 3, output_per_mtok: 15,
                             cached_read_per_mtok: 0.3, cache_write_per_mtok: 3.75}}
  demo/mock: {{input_per_mtok: 1000, output_per_mtok: 1000}}
  demo/cheap: {{input_per_mtok: 1, output_per_mtok: 1}}
  demo/capped: {{input_per_mtok: 1000, output_per_mtok: 1000}}
teams:
  search:
    keys: [{key}]
    models: [gpt, claude, mock, mock-cheap, mock-capped, mock-warned, gpt-warned]
  tiny:
    keys: [{other}]
    models: [mock]
    rate_limit: {{requests_per_minute: 3}}
budgets:
  mock-downgrade: {{limit_usd: 0.05, period: day, match: {{model: mock, team: search}},
                   on_exceed: {{downgrade: mock-cheap}}}}
  capped: {{limit_usd: 0.1, period: month, timezone: Europe/Paris,
           match: {{model: mock-capped}}}}
  heads-up: {{limit_usd: 0.000001, period: day, match: {{model: mock-warned}}, on_exceed: warn}}
  heads-up-gpt: {{limit_usd: 0.000001, period: day, match: {{model: gpt-warned}},
                 on_exceed: warn}}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake: ProviderServer) -> Iterator[Gateway]:
    policy = POLICY.format(port=fake.port, key=KEY_HASH, other=OTHER_HASH)
    gateway = start_gateway(policy, tmp_path_factory.mktemp("metering"),
                            env={"TEST_KEY": "sk-ant-test"})
    yield gateway
    gateway.stop()


@pytest.fixture
def oai(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=10)


def record(gateway: Gateway, request_id: str) -> dict[str, Any]:
    return usage_record(gateway.ledger_path, request_id)


# OpenAI text fixture: 1200 prompt (1024 cached) + 7 completion at 2 / 1 cached / 8 per Mtok.
OPENAI_PLAIN = Decimal(176 * 2 + 1024 * 1 + 7 * 8) / 10**6
# OpenAI text stream: 1100 prompt (1024 cached) + 6 completion.
OPENAI_STREAM = Decimal(76 * 2 + 1024 * 1 + 6 * 8) / 10**6
# Anthropic text: 12 input, 100 cache write, 2048 cache read, 9 output.
ANTHROPIC_PLAIN = Decimal("12") * 3 + Decimal("100") * Decimal("3.75") \
    + Decimal("2048") * Decimal("0.3") + 9 * 15
ANTHROPIC_PLAIN /= 10**6
# Anthropic text stream: 25 input, 1024 cache read, 15 output.
ANTHROPIC_STREAM = (Decimal(25 * 3) + Decimal(1024) * Decimal("0.3") + 15 * 15) / 10**6


@pytest.mark.parametrize(("model", "expected"), [
    ("gpt", OPENAI_PLAIN), ("claude", ANTHROPIC_PLAIN)])
def test_a_plain_reply_carries_its_exact_cost(oai: openai.OpenAI, gateway: Gateway, model: str,
                                             expected: Decimal) -> None:
    raw = oai.chat.completions.with_raw_response.create(model=model, messages=CHAT)  # type: ignore[arg-type]
    assert Decimal(raw.headers["x-switchboard-cost-usd"]) == expected
    row = record(gateway, raw.headers["x-request-id"])
    assert cost_of(row) == expected
    assert (row["team"], row["key_id"], row["requested_model"]) == ("search", KEY_HASH, model)
    assert row["outcome"] == "ok" and row["status"] == 200 and not row["estimated"]


@pytest.mark.parametrize(("model", "expected", "input_tokens"), [
    ("gpt", OPENAI_STREAM, 1100), ("claude", ANTHROPIC_STREAM, 25 + 1024)])
def test_a_stream_is_metered_and_the_usage_chunk_only_reaches_clients_that_ask(
        oai: openai.OpenAI, gateway: Gateway, model: str, expected: Decimal,
        input_tokens: int) -> None:
    with oai.chat.completions.with_streaming_response.create(
            model=model, messages=CHAT, stream=True) as response:  # type: ignore[arg-type]
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    row = record(gateway, request_id)
    assert cost_of(row) == expected
    assert row["input_tokens"] == input_tokens and row["ttft_s"] is not None

    asked = list(oai.chat.completions.create(
        model=model, messages=CHAT, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True}))
    assert asked[-1].usage is not None and asked[-1].usage.prompt_tokens == input_tokens


def test_anthropic_clients_are_metered_too(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    raw = client.messages.with_raw_response.create(model="claude", max_tokens=100,
                                                   messages=[{"role": "user", "content": "Hi"}])
    assert Decimal(raw.headers["x-switchboard-cost-usd"]) == ANTHROPIC_PLAIN
    with client.messages.stream(model="claude", max_tokens=100,
                                messages=[{"role": "user", "content": "Hi"}]) as stream:
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert final.usage.output_tokens == 15
    assert cost_of(record(gateway, request_id)) == ANTHROPIC_STREAM


@pytest.mark.parametrize(("model", "expected"), [
    ("gpt", OPENAI_STREAM), ("claude", ANTHROPIC_STREAM)])
def test_the_usage_chunk_a_client_asked_for_carries_the_cost(
        oai: openai.OpenAI, gateway: Gateway, model: str, expected: Decimal) -> None:
    with oai.chat.completions.with_streaming_response.create(
            model=model, messages=CHAT, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True}) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    usage = [chunk.usage for chunk in chunks if chunk.usage is not None]
    assert len(usage) == 1 and chunks[-1].usage is usage[0]
    cost = (usage[0].model_extra or {}).get("cost")
    assert isinstance(cost, float)  # a JSON number, in USD
    assert Decimal(str(cost)) == expected == cost_of(record(gateway, request_id))


def test_a_stream_without_include_usage_gets_no_usage_chunk_and_no_cost(
        oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="gpt", messages=CHAT,  # type: ignore[arg-type]
                                              stream=True))
    assert chunks and all(chunk.choices for chunk in chunks)  # the usage chunk has none
    assert all(chunk.usage is None and "cost" not in str(chunk.model_extra)
               for chunk in chunks)


def test_an_anthropic_stream_carries_the_cost_in_message_delta(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
    with client.messages.stream(model="claude", max_tokens=100,
                                messages=[{"role": "user", "content": "Hi"}]) as stream:
        deltas = [event for event in stream if event.type == "message_delta"]
        request_id = stream.response.headers["x-request-id"]
    assert len(deltas) == 1
    cost = (deltas[0].usage.model_extra or {}).get("cost")
    assert isinstance(cost, float)
    assert Decimal(str(cost)) == ANTHROPIC_STREAM == cost_of(record(gateway, request_id))


def test_keys_are_required_and_teams_limited_to_their_models(gateway: Gateway) -> None:
    no_key = httpx.post(f"{gateway.url}/v1/chat/completions",
                        json={"model": "mock", "messages": CHAT}, timeout=10)
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "invalid_api_key"
    wrong = anthropic.Anthropic(base_url=gateway.url, api_key="sb-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as denied:
        wrong.messages.create(model="mock", max_tokens=10, messages=[{"role": "user",
                                                                       "content": "Hi"}])
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    tiny = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=OTHER_KEY, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError, match="may not use the model 'gpt'"):
        tiny.chat.completions.create(model="gpt", messages=CHAT)  # type: ignore[arg-type]


def test_requests_per_minute_per_team(gateway: Gateway) -> None:
    if time.time() % 60 > 50:  # five requests must fall inside one rate-limit minute
        time.sleep(61 - time.time() % 60)
    replies = [httpx.post(f"{gateway.url}/v1/chat/completions",
                          headers={"authorization": f"Bearer {OTHER_KEY}"},
                          json={"model": "mock", "messages": CHAT}, timeout=10)
               for _ in range(5)]
    statuses = [reply.status_code for reply in replies]
    refused = replies[-1]
    assert "3 requests per minute" in refused.json()["error"]["message"]
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert statuses == [200, 200, 200, 429, 429]


def test_a_spent_budget_downgrades_to_the_cheaper_model(oai: openai.OpenAI) -> None:
    served = []
    for _ in range(5):
        raw = oai.chat.completions.with_raw_response.create(
            model="mock", messages=CHAT, max_tokens=20)  # type: ignore[arg-type]
        served.append(raw.headers["x-switchboard-model"])
    assert served[0] == "mock"
    assert served[-1] == "cheap"
    assert served.index("cheap") > 0 and set(served[served.index("cheap"):]) == {"cheap"}


def test_a_blocking_budget_holds_under_200_concurrent_requests(gateway: Gateway) -> None:
    statuses = burst([gateway.url], KEY, {"model": "mock-capped", "messages": CHAT,
                                          "max_tokens": 20}, 200)
    assert set(statuses) <= {200, 429}
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1
    wait_released(gateway.ledger_path)

    def spent_nanos() -> int | None:  # usage records are written in the background
        [row] = query(gateway.ledger_path, "SELECT SUM(cost_nanos) AS spent, COUNT(*) AS "
                      "served FROM usage WHERE requested_model = 'mock-capped'")
        return row["spent"] if row["served"] == statuses.count(200) else None

    assert Decimal(poll(spent_nanos, "a record per request served")) / 10**9 <= Decimal("0.1")


def test_usage_and_budgets_from_the_admin_api(gateway: Gateway, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model="gpt", messages=CHAT)  # type: ignore[arg-type]
    time.sleep(0.3)
    admin = f"http://127.0.0.1:{gateway.admin_port}"
    by_team = httpx.get(f"{admin}/usage", params={"by": "team", "since": "1h"}).json()
    search = next(row for row in by_team["rows"] if row["group"] == "search")
    assert search["attempts"] >= 1 and Decimal(search["cost_usd"]) > 0
    budgets = {b["name"]: b for b in httpx.get(f"{admin}/budgets").json()}
    assert budgets["capped"]["timezone"] == "Europe/Paris"
    assert Decimal(budgets["capped"]["spent_usd"]) <= Decimal("0.1")
    assert Decimal(budgets["capped"]["reserved_usd"]) == 0
    assert "/usage" in httpx.get(f"{admin}/openapi.json").json()["paths"]
    table = subprocess.run(
        [sys.executable, "-m", "control_plane", "usage", "--by", "model", "--since", "1h",
         "--admin-url", admin], capture_output=True, text=True, check=True).stdout
    assert any(line.split()[:1] == ["gpt"] for line in table.splitlines())


@pytest.mark.parametrize("model", ["gpt-warned", "mock-warned"])  # provider / local reply
def test_a_warn_budget_serves_and_says_so_in_a_response_header(oai: openai.OpenAI,
                                                                model: str) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model=model, messages=CHAT)  # type: ignore[arg-type]
    assert raw.status_code == 200
    warning = raw.headers["x-switchboard-budget-warning"]
    assert "heads-up" in warning
