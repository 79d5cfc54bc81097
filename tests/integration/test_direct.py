"""`gateway.reply_cost: false`: a request its one provider takes as it is is forwarded by Envoy
alone after admission, with no upstream worker call, and metered from Envoy's access log.

Counted with Envoy's own ext_proc statistics of the provider clusters; usage and costs checked
against the recorded fixtures' usage (tests/fixtures/*/responses, see their README), priced by
hand as in test_metering.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from control_plane.keys import create_key
from ext_proc.metering.estimate import BYTES_PER_TOKEN_FLOOR
from tests.fakes.provider_server import FIXTURES, HOLD_AFTER_HEADER, ProviderServer
from tests.integration.test_metering import (
    ANTHROPIC_PLAIN,
    ANTHROPIC_STREAM,
    CHAT,
    OPENAI_PLAIN,
    OPENAI_STREAM,
)
from tests.support.gateway import Gateway, start_gateway
from tests.support.metering import cost_of, tokens_of, usage_record, wait_released
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

KEY, KEY_HASH = create_key("search")

POLICY = """
gateway: {{reply_cost: false}}
providers:
  oai: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1", api_key: env:OAI_KEY}}
  claude: {{kind: anthropic, base_url: "http://127.0.0.1:{port}", api_key: env:CLAUDE_KEY}}
  gone: {{kind: openai, base_url: "http://127.0.0.1:{dead}/v1", api_key: env:OAI_KEY}}
models:
  gpt-4o-mini: {{targets: [{{provider: oai}}]}}
  claude-haiku-4-5: {{targets: [{{provider: claude}}]}}
  renamed: {{targets: [{{provider: oai, model: gpt-4o-mini}}]}}
  unreachable: {{targets: [{{provider: gone}}]}}
prices:
  oai/gpt-4o-mini: {{input_per_mtok: 2, output_per_mtok: 8, cached_read_per_mtok: 1}}
  claude/claude-haiku-4-5: {{input_per_mtok: 3, output_per_mtok: 15,
                             cached_read_per_mtok: 0.3, cache_write_per_mtok: 3.75}}
teams:
  search:
    keys: [{key}]
    budget: {{limit_usd: 100, period: day}}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake: ProviderServer) -> Iterator[Gateway]:
    policy = POLICY.format(port=fake.port, dead=free_port(), key=KEY_HASH)
    gateway = start_gateway(policy, tmp_path_factory.mktemp("direct"),
                            env={"OAI_KEY": "sk-provider", "CLAUDE_KEY": "sk-ant-provider"})
    yield gateway
    gateway.stop()


@pytest.fixture
def oai(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=10)


def received(fake: ProviderServer) -> dict[str, Any]:
    return fake.last


def test_an_unchanged_request_skips_the_worker_and_is_metered_from_the_access_log(
        oai: openai.OpenAI, gateway: Gateway, fake: ProviderServer) -> None:
    before = gateway.worker_messages()
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    assert raw.http_response.status_code == 200
    assert raw.parse().usage is not None
    assert gateway.worker_messages() == before  # no attempt reached a worker
    sent = received(fake)
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == "Bearer sk-provider"  # not the gateway key
    assert not any(name.startswith("x-switchboard-") for name in sent["headers"])
    assert "accept-encoding" not in sent["headers"]  # the usage is read from the reply
    assert raw.headers["x-switchboard-provider"] == "oai"
    assert raw.headers["x-switchboard-model"] == "gpt-4o-mini"
    assert "x-switchboard-cost-usd" not in raw.headers  # the reply left before it was priced
    row = usage_record(gateway.ledger_path, raw.headers["x-request-id"])
    assert cost_of(row) == OPENAI_PLAIN
    assert tokens_of(row) == (1200, 7, 1024, 0, 0)
    assert (row["team"], row["key_id"], row["requested_model"]) == ("search", KEY_HASH,
                                                                    "gpt-4o-mini")
    assert (row["provider"], row["provider_model"]) == ("oai", "gpt-4o-mini")
    assert row["outcome"] == "ok" and row["status"] == 200 and not row["estimated"]
    wait_released(gateway.ledger_path)


def test_an_anthropic_client_is_forwarded_alone_with_the_providers_headers(
        gateway: Gateway, fake: ProviderServer) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=10)
    before = gateway.worker_messages()
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=64,
        messages=[{"role": "user", "content": "Hello there"}])
    assert raw.parse().usage.output_tokens == 9
    assert gateway.worker_messages() == before
    sent = received(fake)["headers"]
    assert sent["x-api-key"] == "sk-ant-provider" and sent["anthropic-version"]
    assert "authorization" not in sent
    row = usage_record(gateway.ledger_path, raw.headers["x-request-id"])
    assert cost_of(row) == ANTHROPIC_PLAIN
    assert tokens_of(row) == (12 + 100 + 2048, 9, 2048, 100, 0)


def test_a_renamed_model_still_goes_through_the_worker(
        oai: openai.OpenAI, gateway: Gateway, fake: ProviderServer) -> None:
    before = gateway.worker_messages()
    raw = oai.chat.completions.with_raw_response.create(
        model="renamed", messages=CHAT)  # type: ignore[arg-type]
    assert received(fake)["body"]["model"] == "gpt-4o-mini"
    # The body is read and rewritten; the reply is read whole, its headers skipped (no cost
    # is set on them), so Envoy drops its length.
    assert gateway.worker_messages() - before == 3
    assert "x-switchboard-cost-usd" not in raw.headers
    assert "content-length" not in raw.headers
    assert cost_of(usage_record(gateway.ledger_path, raw.headers["x-request-id"])) \
        == OPENAI_PLAIN


def test_a_stream_that_asks_for_usage_is_forwarded_alone_and_metered_from_its_events(
        oai: openai.OpenAI, gateway: Gateway) -> None:
    before = gateway.worker_messages()
    with oai.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=CHAT, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True}) as response:
        usage = [chunk.usage for chunk in response.parse() if chunk.usage is not None]
        request_id = response.headers["x-request-id"]
    assert gateway.worker_messages() == before
    assert len(usage) == 1 and not usage[0].model_extra  # the provider's chunk, no cost added
    row = usage_record(gateway.ledger_path, request_id)
    assert cost_of(row) == OPENAI_STREAM and tokens_of(row) == (1100, 6, 1024, 0, 0)
    assert row["ttft_s"] is not None and not row["estimated"]


def test_an_anthropic_stream_sums_its_start_and_delta_usage(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=10)
    before = gateway.worker_messages()
    with client.messages.with_streaming_response.create(
            model="claude-haiku-4-5", max_tokens=64, stream=True,
            messages=[{"role": "user", "content": "Hello there"}]) as response:
        events = [event.type for event in response.parse()]
        request_id = response.headers["x-request-id"]
    assert events[-1] == "message_stop"
    assert gateway.worker_messages() == before
    row = usage_record(gateway.ledger_path, request_id)
    assert tokens_of(row) == (25 + 1024, 15, 1024, 0, 0)
    assert cost_of(row) == ANTHROPIC_STREAM


def test_a_client_that_hangs_up_at_done_before_the_providers_body_ends_had_it_all(
        oai: openai.OpenAI, gateway: Gateway) -> None:
    # The SDK closes the connection at [DONE]; the provider ends its body later: Envoy flags
    # the request as cut by its client, but the client had the whole answer.
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=CHAT, stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
        extra_headers={HOLD_AFTER_HEADER: "[DONE]"})
    usage = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert len(usage) == 1
    row = usage_record(gateway.ledger_path, stream.response.headers["x-request-id"])
    assert (row["outcome"], row["status"], row["estimated"]) == ("ok", 200, 0)
    assert cost_of(row) == OPENAI_STREAM and tokens_of(row) == (1100, 6, 1024, 0, 0)


def test_an_anthropic_stream_cut_after_its_start_is_estimated_past_the_prompt(
        gateway: Gateway) -> None:
    # message_start's output count is a placeholder (1); the client leaves before the final
    # count, so the output is estimated from what was sent, the prompt taken as counted.
    events = (FIXTURES / "anthropic" / "streams" / "text.sse").read_bytes()
    sent = events.index(b"\n\n") + 2  # message_start, then the provider holds
    with httpx.stream("POST", f"{gateway.url}/v1/messages", timeout=10, json={
            "model": "claude-haiku-4-5", "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "Hello there"}]}, headers={
            "x-api-key": KEY, "anthropic-version": "2023-06-01",
            HOLD_AFTER_HEADER: "message_start"}) as response:
        lines = response.iter_lines()
        assert [next(lines), next(lines)[:6], next(lines)] == [
            "event: message_start", "data: ", ""]
        request_id = response.headers["x-request-id"]
    row = usage_record(gateway.ledger_path, request_id)
    assert (row["outcome"], row["status"], row["estimated"]) == ("client_disconnect", 200, 1)
    assert tokens_of(row) == (25 + 1024, math.ceil(sent / BYTES_PER_TOKEN_FLOOR), 1024, 0, 0)


def test_a_stream_that_does_not_ask_for_usage_goes_through_the_worker(
        oai: openai.OpenAI, gateway: Gateway) -> None:
    before = gateway.worker_messages()
    with oai.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=CHAT, stream=True) as response:  # type: ignore[arg-type]
        chunks = list(response.parse())
        request_id = response.headers["x-request-id"]
    assert gateway.worker_messages() > before  # it asks for the usage and removes it again
    assert all(chunk.usage is None for chunk in chunks)
    assert cost_of(usage_record(gateway.ledger_path, request_id)) == OPENAI_STREAM


def test_a_client_cannot_mark_its_own_request_as_forwarded_alone(
        gateway: Gateway, fake: ProviderServer) -> None:
    before = gateway.worker_messages()
    response = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10, json={
        "model": "renamed", "messages": CHAT}, headers={
        "authorization": f"Bearer {KEY}", "x-switchboard-direct": "1"})
    assert response.status_code == 200
    assert gateway.worker_messages() - before == 3
    assert received(fake)["body"]["model"] == "gpt-4o-mini"


def test_a_provider_that_cannot_be_reached_is_recorded_and_released(
        oai: openai.OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as failure:
        oai.chat.completions.with_raw_response.create(
            model="unreachable", messages=CHAT)  # type: ignore[arg-type]
    assert failure.value.status_code == 503
    assert isinstance(failure.value.body, dict)  # in OpenAI's error schema
    row = usage_record(gateway.ledger_path, failure.value.response.headers["x-request-id"])
    assert (row["outcome"], row["status"]) == ("connect_failure", 0)
    assert tokens_of(row) == (0, 0, 0, 0, 0) and row["cost_nanos"] is None  # no price given
    wait_released(gateway.ledger_path)


def test_an_unknown_key_is_still_refused(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-sb-wrong",
                           max_retries=0, timeout=10)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]


def test_a_stream_the_worker_translates_carries_no_cost_either(
        gateway: Gateway) -> None:
    """Without the cost in replies, the worker leaves `usage.cost` out of the usage event
    of the streams it processes too; the usage record holds the cost."""
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=10)
    before = gateway.worker_messages()
    with client.messages.with_streaming_response.create(
            model="renamed", max_tokens=64, stream=True,
            messages=[{"role": "user", "content": "Hello there"}]) as response:
        events = list(response.parse())
        request_id = response.headers["x-request-id"]
    assert gateway.worker_messages() > before  # translated from OpenAI's stream
    [delta] = [event for event in events if event.type == "message_delta"]
    assert delta.usage.output_tokens > 0
    assert "cost" not in delta.usage.model_dump(exclude_unset=True)
    assert cost_of(usage_record(gateway.ledger_path, request_id)) == OPENAI_STREAM


def test_each_envoy_threads_access_log_goes_to_the_least_busy_worker(
        gateway: Gateway) -> None:
    """Each Envoy thread sends its access log over one stream for as long as it runs: were
    the streams spread by round robin, whose start each thread draws alone, every thread's
    could land on one worker, which would then meter all the traffic alone."""
    threads = gateway.envoy_threads()
    deadline = time.monotonic() + 20
    while sum((streams := gateway.worker_streams()).values()) < threads:
        assert time.monotonic() < deadline, streams
        # Fresh connections, spread by the kernel over Envoy's threads, each thread's log
        # stream opened by its first metered request.
        with httpx.Client(timeout=10) as client:
            response = client.post(f"{gateway.url}/v1/chat/completions", json={
                "model": "gpt-4o-mini", "messages": CHAT},
                headers={"authorization": f"Bearer {KEY}"})
        assert response.status_code == 200
    assert sum(streams.values()) == threads  # nothing else holds a stream open
    assert max(streams.values()) - min(streams.values()) <= 1, streams
