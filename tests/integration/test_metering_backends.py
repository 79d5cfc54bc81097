"""The exact cost of answers from Azure OpenAI, Bedrock, Gemini and Vertex backends, plain and
streamed, for OpenAI and Anthropic clients, through the real Envoy and workers into the SQLite
ledger; and streams the client cuts short, which are still recorded and release their
reservation.

The cloud fake reports one known usage (uncached prompt, cache reads and writes, output and
reasoning tokens), each provider in its own documented shape, and the policy sets each
provider's prices, so every expected cost below is worked out by hand.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from control_plane.keys import create_key
from ext_proc.metering.estimate import HeuristicEstimator
from tests.fakes.cloud_server import CloudFake, FakeUsage
from tests.support.cloud import BEDROCK_MODEL, start_cloud_gateway
from tests.support.gateway import Gateway
from tests.support.metering import cost_of, query, tokens_of, usage_record, wait_released

pytestmark = pytest.mark.integration

KEY, KEY_HASH = create_key("search")
USAGE = FakeUsage(prompt=1500, cached_read=2048, cache_write=300, output=120, reasoning=40)
HOLD_AFTER = 3  # events a held stream sends before its client goes away

POLICY = f"""
models:
  azure-chat: {{targets: [{{provider: azure, model: gpt-4o-deployment}}]}}
  bedrock-chat: {{targets: [{{provider: bedrock, model: "{BEDROCK_MODEL}"}}]}}
  gemini-chat: {{targets: [{{provider: gemini, model: gemini-2.5-flash}}]}}
  vertex-chat: {{targets: [{{provider: vertex, model: gemini-2.5-flash}}]}}
  azure-embed: {{targets: [{{provider: azure, model: embed-deployment}}]}}
  bedrock-embed: {{targets: [{{provider: bedrock, model: "amazon.titan-embed-text-v2:0"}}]}}
  gemini-embed: {{targets: [{{provider: gemini, model: text-embedding-004}}]}}
  vertex-embed: {{targets: [{{provider: vertex, model: text-embedding-005}}]}}
prices:
  azure/gpt-4o-deployment: {{input_per_mtok: 2.5, output_per_mtok: 10,
                            cached_read_per_mtok: 1.25}}
  "bedrock/{BEDROCK_MODEL}": {{input_per_mtok: 3, output_per_mtok: 15,
                             cached_read_per_mtok: 0.3, cache_write_per_mtok: 3.75}}
  gemini/gemini-2.5-flash: {{input_per_mtok: 0.3, output_per_mtok: 2.5,
                            cached_read_per_mtok: 0.075}}
  vertex/gemini-2.5-flash: {{input_per_mtok: 0.35, output_per_mtok: 2.75,
                            cached_read_per_mtok: 0.0875}}
  azure/embed-deployment: {{input_per_mtok: 0.13, output_per_mtok: 0}}
  "bedrock/amazon.titan-embed-text-v2:0": {{input_per_mtok: 0.02, output_per_mtok: 0}}
  gemini/text-embedding-004: {{input_per_mtok: 0.15, output_per_mtok: 0}}
  vertex/text-embedding-005: {{input_per_mtok: 0.025, output_per_mtok: 0}}
teams:
  search: {{keys: [{KEY_HASH}]}}
budgets:
  org-monthly: {{limit_usd: 1000, period: month}}
"""


@dataclass(frozen=True)
class Expected:
    """What the ledger must hold for one answer of USAGE from a backend."""

    tokens: tuple[int, int, int, int, int]  # input, output, cached read, cache creation, reasoning
    cost_micro_usd: Decimal  # sum of tokens x USD per million tokens

    @property
    def cost(self) -> Decimal:
        return self.cost_micro_usd / 10**6


# Every prompt token is counted as input, cache reads and writes included (docs/state.md).
# Azure: 3848 prompt tokens (2048 cached: OpenAI counts no cache writes, so 1800 uncached),
# 160 completion tokens of which 40 reasoning.
# Bedrock: inputTokens 1500 + cacheRead 2048 + cacheWrite 300; outputTokens 160.
# Bedrock: no reasoning count (Converse has none; it is inside outputTokens).
# Gemini/Vertex: promptTokenCount 3848 with cachedContentTokenCount 2048; candidates 120 +
# thoughts 40 billed as output. Their reasoning share is not compared: it crosses the Messages
# shape, which has no field for it (docs/translation.md).
EXPECTED = {
    "azure": Expected((3848, 160, 2048, 0, 40),
                      1800 * Decimal("2.5") + 2048 * Decimal("1.25") + 160 * 10),
    "bedrock": Expected((3848, 160, 2048, 300, 0),
                        1500 * 3 + 2048 * Decimal("0.3") + 300 * Decimal("3.75") + 160 * 15),
    "gemini": Expected((3848, 160, 2048, 0, 0),  # reasoning not compared
                       1800 * Decimal("0.3") + 2048 * Decimal("0.075") + 160 * Decimal("2.5")),
    "vertex": Expected((3848, 160, 2048, 0, 0),  # reasoning not compared
                       1800 * Decimal("0.35") + 2048 * Decimal("0.0875")
                       + 160 * Decimal("2.75")),
}
# The same, per million tokens, for an estimate: (input, output) prices.
PRICES = {"azure": (Decimal("2.5"), Decimal(10)), "bedrock": (Decimal(3), Decimal(15)),
          "gemini": (Decimal("0.3"), Decimal("2.5")), "vertex": (Decimal("0.35"),
                                                                 Decimal("2.75"))}
EMBEDDING_PRICES = {"azure": Decimal("0.13"), "bedrock": Decimal("0.02"),
                    "gemini": Decimal("0.15"), "vertex": Decimal("0.025")}
REASONING_NOT_COMPARED = {"gemini", "vertex"}
BACKENDS = list(EXPECTED)
HELLO: Any = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[CloudFake]:
    server = CloudFake(usage=USAGE).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake: CloudFake) -> Iterator[Gateway]:
    running = start_cloud_gateway(POLICY, fake, tmp_path_factory.mktemp("metering-backends"))
    yield running
    running.stop()


@pytest.fixture
def held(fake: CloudFake) -> Iterator[CloudFake]:
    """Streams stop after HOLD_AFTER events until the gateway hangs up."""
    fake.hold_after = HOLD_AFTER
    yield fake
    fake.hold_after = None


def assert_metered(gateway: Gateway, request_id: str, backend: str) -> dict[str, Any]:
    row = usage_record(gateway.ledger_path, request_id)
    expected = EXPECTED[backend]
    tokens = tokens_of(row)
    if backend in REASONING_NOT_COMPARED:
        tokens = (*tokens[:4], 0)
    assert tokens == expected.tokens
    assert cost_of(row) == expected.cost
    assert (row["outcome"], row["status"], row["estimated"]) == ("ok", 200, 0)
    assert (row["team"], row["key_id"], row["provider"]) == ("search", KEY_HASH, backend)
    return row


def openai_client(gateway: Gateway, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=20,
                         **options)


def anthropic_client(gateway: Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=20)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_plain_openai_reply_carries_its_exact_cost(gateway: Gateway, backend: str) -> None:
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model=f"{backend}-chat", messages=HELLO)
    assert raw.parse().usage.completion_tokens == 160  # type: ignore[union-attr]
    assert Decimal(raw.headers["x-switchboard-cost-usd"]) == EXPECTED[backend].cost
    assert_metered(gateway, raw.headers["x-request-id"], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_plain_anthropic_reply_carries_its_exact_cost(gateway: Gateway, backend: str) -> None:
    raw = anthropic_client(gateway).messages.with_raw_response.create(
        model=f"{backend}-chat", max_tokens=500, messages=HELLO)
    assert raw.parse().usage.output_tokens == 160
    assert Decimal(raw.headers["x-switchboard-cost-usd"]) == EXPECTED[backend].cost
    assert_metered(gateway, raw.headers["x-request-id"], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_openai_stream_is_metered_exactly(gateway: Gateway, backend: str) -> None:
    # Read to the end of the body. (The OpenAI SDK hangs up at [DONE], racing the end of the
    # provider's body to the worker: the cost is still exact, but the record may then say
    # client_disconnect.)
    body = {"model": f"{backend}-chat", "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=20,
                      headers={"authorization": f"Bearer {KEY}"}) as response:
        assert "x-switchboard-cost-usd" not in response.headers  # not known before the end
        events = [line.removeprefix("data: ") for line in response.iter_lines()
                  if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert "answers" in "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert all("usage" not in chunk for chunk in chunks)  # the client did not ask for it
    row = assert_metered(gateway, response.headers["x-request-id"], backend)
    assert row["ttft_s"] is not None and row["ttft_s"] <= row["latency_s"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_anthropic_stream_is_metered_exactly(gateway: Gateway, backend: str) -> None:
    with anthropic_client(gateway).messages.stream(
            model=f"{backend}-chat", max_tokens=500, messages=HELLO) as stream:
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert final.usage.output_tokens == 160
    assert_metered(gateway, request_id, backend)


def estimated_cost(backend: str, input_tokens: int, output_tokens: int) -> Decimal:
    input_price, output_price = PRICES[backend]
    return (input_tokens * input_price + output_tokens * output_price) / 10**6


def assert_estimated(gateway: Gateway, request_id: str, body: bytes, backend: str,
                     output_tokens: int) -> dict[str, Any]:
    """An estimate (docs/state.md): the prompt from the client's request text, one output
    token per event the provider streamed; and the reservation is handed back."""
    row = usage_record(gateway.ledger_path, request_id)
    prompt = HeuristicEstimator().count(body.decode())
    assert (row["status"], row["estimated"]) == (200, 1)
    assert tokens_of(row) == (prompt, output_tokens, 0, 0, 0)
    assert cost_of(row) == estimated_cost(backend, prompt, output_tokens)
    wait_released(gateway.ledger_path)
    assert query(gateway.ledger_path, "SELECT id FROM reservations WHERE id = ?",
                 request_id) == []
    return row


def settle_before_hanging_up() -> None:
    """The provider sent its HOLD_AFTER events at once; a moment lets every one of them reach
    the worker even if Envoy read them in two pieces, so the estimate's count is exact."""
    time.sleep(0.2)


def cut_openai_sdk_stream(gateway: Gateway, backend: str) -> tuple[str, bytes]:
    """An OpenAI SDK stream left after its first chunk: (request id, the body it sent)."""
    sent: list[bytes] = []
    http = httpx.Client(event_hooks={"request": [lambda r: sent.append(r.read())]})
    client = openai_client(gateway, http_client=http)
    with client.chat.completions.with_streaming_response.create(
            model=f"{backend}-chat", messages=HELLO, stream=True) as response:
        request_id = response.headers["x-request-id"]
        first = next(iter(response.parse()))
        assert first.choices[0].delta.role == "assistant"
        settle_before_hanging_up()
    # Leaving the block closed the connection mid-answer: the provider is still holding.
    return request_id, sent[-1]


@pytest.mark.usefixtures("held")
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_openai_sdk_stream_closed_after_its_first_chunk_is_charged_an_estimate(
        gateway: Gateway, backend: str) -> None:
    request_id, body = cut_openai_sdk_stream(gateway, backend)
    assert_estimated(gateway, request_id, body, backend, output_tokens=HOLD_AFTER)


@pytest.mark.usefixtures("held")
def test_a_raw_stream_closed_early_is_charged_an_estimate(gateway: Gateway) -> None:
    body = orjson.dumps({"model": "gemini-chat", "max_tokens": 200, "stream": True,
                         "messages": [{"role": "user", "content": "Tell me about Envoy"}]})
    with httpx.Client(timeout=20) as http, http.stream(
            "POST", f"{gateway.url}/v1/messages", content=body,
            headers={"x-api-key": KEY, "anthropic-version": "2023-06-01",
                     "content-type": "application/json"}) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        assert next(response.iter_lines()) == "event: message_start"
        settle_before_hanging_up()
    assert_estimated(gateway, request_id, body, "gemini", output_tokens=HOLD_AFTER)


@pytest.mark.usefixtures("held")
def test_a_stream_closed_early_is_recorded_as_a_client_disconnect(gateway: Gateway) -> None:
    request_id, _ = cut_openai_sdk_stream(gateway, "azure")
    assert usage_record(gateway.ledger_path, request_id)["outcome"] == "client_disconnect"


@pytest.mark.parametrize(("backend", "inputs", "tokens"), [
    ("azure", ["hello"], 3),  # usage.prompt_tokens
    ("bedrock", ["hello"], 2),  # x-amzn-bedrock-input-token-count (Titan: one text a call)
    ("vertex", ["hello", "world"], 4),  # predictions[].embeddings.statistics.token_count
])
def test_embeddings_carry_their_exact_cost(gateway: Gateway, backend: str, inputs: list[str],
                                           tokens: int) -> None:
    raw = openai_client(gateway).embeddings.with_raw_response.create(
        model=f"{backend}-embed", input=inputs)
    expected = tokens * EMBEDDING_PRICES[backend] / 10**6
    assert Decimal(raw.headers["x-switchboard-cost-usd"]) == expected
    row = usage_record(gateway.ledger_path, raw.headers["x-request-id"])
    assert (tokens_of(row), cost_of(row), row["estimated"]) == ((tokens, 0, 0, 0, 0),
                                                                 expected, 0)


def test_gemini_embeddings_which_report_no_tokens_are_charged_an_estimate(
        gateway: Gateway) -> None:
    body = orjson.dumps({"model": "gemini-embed", "input": "hello there"})
    reply = httpx.post(f"{gateway.url}/v1/embeddings", content=body, timeout=20, headers={
        "authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert reply.status_code == 200
    row = usage_record(gateway.ledger_path, reply.headers["x-request-id"])
    prompt = HeuristicEstimator().count(body.decode())
    assert (tokens_of(row), row["estimated"]) == ((prompt, 0, 0, 0, 0), 1)
    assert cost_of(row) == prompt * EMBEDDING_PRICES["gemini"] / 10**6
