"""Bodies that need no change are forwarded unread: the worker rewrites the headers from what
Envoy read before routing and never receives the body (one ext_proc message fewer).

Counted with Envoy's own ext_proc statistics of the provider clusters, and checked byte for
byte at the fake provider: the client's exact body, its exact length, after any attempt.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.fakes.fault_server import FaultServer, Request
from tests.support.gateway import Gateway, start_gateway

pytestmark = pytest.mark.integration

POLICY = """
providers:
  primary: {{kind: openai, base_url: "{primary}/v1", api_key: env:PRIMARY_KEY}}
  claude: {{kind: anthropic, base_url: "{claude}", api_key: env:CLAUDE_KEY}}
models:
  same: {{targets: [{{provider: primary}}]}}
  renamed: {{targets: [{{provider: primary, model: provider-name}}]}}
  claude-same: {{targets: [{{provider: claude}}]}}
  # A translated attempt first: the second one must restore the client's body and length.
  back: {{targets: [{{provider: claude, model: claude-x}}, {{provider: primary}}]}}
prices:
  primary/*: {{input_per_mtok: 1.5, output_per_mtok: 6}}
"""
# Spacing no serializer would produce: only the client's own bytes match it.
ODD = b'{ "model" : "same",\n  "messages": [{"role": "user", "content": "hi \\u00e9"}] }'


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FaultServer, FaultServer]]:
    primary, claude = FaultServer("primary").start(), FaultServer("claude").start()
    yield primary, claude
    primary.stop()
    claude.stop()


@pytest.fixture(scope="module")
def gateway(fakes: tuple[FaultServer, FaultServer],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    primary, claude = fakes
    gw = start_gateway(POLICY.format(primary=primary.base_url, claude=claude.base_url),
                       tmp_path_factory.mktemp("forwarding"),
                       env={"PRIMARY_KEY": "primary-key", "CLAUDE_KEY": "claude-key"})
    yield gw
    gw.stop()


def post(gateway: Gateway, path: str, body: bytes | Iterator[bytes],
         **headers: str) -> httpx.Response:
    response = httpx.post(gateway.url + path, content=body, timeout=10,
                          headers={"content-type": "application/json", **headers})
    response.read()
    return response


def last(fake: FaultServer) -> Request:
    return fake.received[-1]


def test_an_unchanged_body_reaches_the_provider_unread(
        gateway: Gateway, fakes: tuple[FaultServer, FaultServer]) -> None:
    primary, _ = fakes
    before = gateway.worker_messages()
    response = post(gateway, "/v1/chat/completions", ODD)
    assert response.status_code == 200, response.text
    # Request headers, response headers, response body: the request body never went.
    assert gateway.worker_messages() - before == 3
    served = last(primary)
    assert served.raw == ODD
    assert served.headers["content-length"] == str(len(ODD))
    assert served.path == "/v1/chat/completions"
    assert served.headers["authorization"] == "Bearer primary-key"
    assert not any(name.startswith("x-switchboard-") for name in served.headers)
    assert response.headers["x-switchboard-cost-usd"]  # the reply is still read and metered


def test_a_renamed_model_is_still_rewritten(
        gateway: Gateway, fakes: tuple[FaultServer, FaultServer]) -> None:
    primary, _ = fakes
    before = gateway.worker_messages()
    body = ODD.replace(b'"same"', b'"renamed"')
    assert post(gateway, "/v1/chat/completions", body).status_code == 200
    assert gateway.worker_messages() - before == 4
    assert last(primary).body["model"] == "provider-name"
    assert last(primary).body["messages"] == orjson.loads(body)["messages"]


def test_a_chunked_body_is_forwarded_with_its_length(
        gateway: Gateway, fakes: tuple[FaultServer, FaultServer]) -> None:
    primary, _ = fakes
    before = gateway.worker_messages()
    response = post(gateway, "/v1/chat/completions", iter([ODD[:20], ODD[20:]]))
    assert response.status_code == 200, response.text
    assert gateway.worker_messages() - before == 3
    assert last(primary).raw == ODD
    assert last(primary).headers["content-length"] == str(len(ODD))


def test_a_stream_is_forwarded_unread_only_when_it_asks_for_usage(
        gateway: Gateway, fakes: tuple[FaultServer, FaultServer]) -> None:
    primary, _ = fakes
    asks = ODD.replace(b'"same",', b'"same", "stream" : true,\n'
                       b' "stream_options": {"include_usage": true},')
    response = post(gateway, "/v1/chat/completions", asks)
    assert response.status_code == 200, response.text
    assert last(primary).raw == asks
    events = [orjson.loads(line[len("data: "):]) for line in response.text.splitlines()
              if line.startswith("data: {")]
    [usage] = [e["usage"] for e in events if e.get("usage")]
    assert usage["cost"] > 0  # the cost still reaches the stream's usage event
    # Without include_usage the gateway asks for it: the body is read and rewritten.
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    chunks = list(client.chat.completions.create(
        model="same", messages=[{"role": "user", "content": "hello"}], stream=True))
    assert last(primary).body["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)


def test_after_a_translated_attempt_the_next_gets_the_clients_body_and_length(
        gateway: Gateway, fakes: tuple[FaultServer, FaultServer]) -> None:
    primary, claude = fakes
    body = ODD.replace(b'"same"', b'"back"')
    response = post(gateway, "/v1/chat/completions", body, **{"x-fault-claude": "503"})
    assert response.status_code == 200, response.text
    assert response.headers["x-switchboard-provider"] == "primary"
    assert last(claude).body["model"] == "claude-x"  # translated to Messages
    served = last(primary)
    assert served.raw == body
    assert served.headers["content-length"] == str(len(body))
    assert served.headers["authorization"] == "Bearer primary-key"
    assert "x-api-key" not in served.headers  # the first provider's credential stays behind


def test_an_anthropic_client_to_anthropic_is_forwarded_unread(
        gateway: Gateway, fakes: tuple[FaultServer, FaultServer]) -> None:
    _, claude = fakes
    before = gateway.worker_messages()
    message = anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0).messages
    reply = message.create(model="claude-same", max_tokens=16,
                           messages=[{"role": "user", "content": "hello"}])
    assert reply.content
    assert gateway.worker_messages() - before == 3
    served = last(claude)
    assert served.headers["x-api-key"] == "claude-key"
    assert served.body["model"] == "claude-same"
    assert served.headers["content-length"] == str(len(served.raw))
