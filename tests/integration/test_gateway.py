"""The whole gateway, driven by the official OpenAI SDK: real Envoy, control plane, workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.support.gateway import Gateway, start_gateway

pytestmark = pytest.mark.integration

POLICY = """
providers:
  alpha: {{kind: openai, base_url: "{alpha}", api_key: env:ALPHA_KEY}}
  beta: {{kind: openai, base_url: "{beta}", api_key: "file:{beta_key}"}}
  demo: {{kind: mock}}
models:
  gpt-test: {{targets: [{{provider: alpha}}]}}
  renamed: {{targets: [{{provider: beta, model: beta-large}}]}}
  embed: {{targets: [{{provider: alpha, model: text-embed}}]}}
  mock: {{targets: [{{provider: demo}}]}}
gateway: {{max_request_bytes: 64KiB}}
"""


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    alpha, beta = FakeOpenAI("fake-alpha").start(), FakeOpenAI("fake-beta").start()
    yield alpha, beta
    alpha.stop()
    beta.stop()


@pytest.fixture(scope="module")
def gateway(upstreams: tuple[FakeOpenAI, FakeOpenAI],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("gateway")
    beta_key = work / "beta-key"
    beta_key.write_text("beta-secret\n")
    alpha, beta = upstreams
    gw = start_gateway(POLICY.format(alpha=alpha.base_url, beta=beta.base_url,
                                     beta_key=beta_key), work, env={"ALPHA_KEY": "alpha-secret"})
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-gateway-key",
                         max_retries=0, timeout=20)


@pytest.fixture(autouse=True)
def _clear(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    for fake in upstreams:
        fake.received.clear()


def test_routes_by_model_and_injects_the_provider_key(
        client: openai.OpenAI, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    alpha, beta = upstreams
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-switchboard-provider": "beta"})
    completion = raw.parse()
    assert completion.choices[0].message.content == "fake-alpha answers gpt-test"
    assert raw.headers["x-switchboard-provider"] == "alpha"
    assert raw.headers["x-switchboard-model"] == "gpt-test"
    assert not beta.received
    [received] = alpha.received
    assert received.path == "/v1/chat/completions"
    assert received.headers["authorization"] == "Bearer alpha-secret"
    assert received.headers["host"] == f"127.0.0.1:{alpha.port}"
    assert not any("client-gateway-key" in value for value in received.headers.values())
    assert not any(name.startswith("x-switchboard-") for name in received.headers)


def test_an_alias_renames_the_model_for_its_provider(
        client: openai.OpenAI, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    _, beta = upstreams
    completion = client.chat.completions.create(
        model="renamed", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "fake-beta answers beta-large"
    [received] = beta.received
    assert received.body["model"] == "beta-large"
    assert received.body["messages"] == [{"role": "user", "content": "hi"}]
    assert received.headers["authorization"] == "Bearer beta-secret"
    assert int(received.headers["content-length"]) > 0


def test_streaming_passes_through_chunk_by_chunk(
        client: openai.OpenAI, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    stream = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "fake-alpha answers gpt-test"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert upstreams[0].received[0].body["stream"] is True


def test_embeddings_reach_the_aliased_model(
        client: openai.OpenAI, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    result = client.embeddings.create(model="embed", input=["a", "b"])
    assert [d.embedding for d in result.data] == [[0.1, 0.2, 0.3]] * 2
    assert upstreams[0].received[0].path == "/v1/embeddings"
    assert upstreams[0].received[0].body["model"] == "text-embed"


def test_the_mock_provider_answers_plain_and_streamed(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "tell me a joke"}]
    completion = client.chat.completions.create(model="mock", messages=messages)  # type: ignore[arg-type]
    expected = "This is a mock reply from Switchboard to: tell me a joke"
    assert completion.choices[0].message.content == expected
    assert completion.usage is not None and completion.usage.prompt_tokens == 4
    stream = client.chat.completions.create(model="mock", messages=messages,  # type: ignore[arg-type]
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12


def test_models_lists_the_policy_models(client: openai.OpenAI) -> None:
    assert sorted(m.id for m in client.models.list()) == ["embed", "gpt-test", "mock",
                                                          "renamed"]


@pytest.mark.parametrize(("body", "status", "message"), [
    (b'{"model": "gpt-test", ', 400, "not valid JSON"),
    (b'{"messages": []}', 400, "no 'model' field"),
    (b'{"model": 5, "messages": []}', 400, "no 'model' field with a model's name"),
    (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "\\ud800"}]}', 400,
     "not valid JSON"),
    (b'{"model": "gpt-5-ultra", "messages": []}', 404, "'gpt-5-ultra' is not served"),
    (b'{"model": "gpt-test\\r\\nx-api-key: k", "messages": []}', 404, "is not served"),
    (b'{"model": "mock", "messages": "hello"}', 400, "'messages' must be a non-empty list"),
    (b'{"model": "mock", "pad": "' + b"x" * 70_000 + b'"}', 413, "Payload Too Large"),
])
def test_bad_requests_get_openai_errors(gateway: Gateway, body: bytes, status: int,
                                        message: str) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=body,
                          headers={"content-type": "application/json"}, timeout=10)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error["message"]
    assert error["type"] and error["code"]


def test_unknown_model_raises_not_found_in_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "'nope' is not served" in str(raised.value)


def test_an_upstream_error_reaches_the_client_with_its_status(
        client: openai.OpenAI, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    alpha, _ = upstreams
    alpha.status = 429
    try:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-test",
                                           messages=[{"role": "user", "content": "x"}])
    finally:
        alpha.status = 200


def test_unknown_paths_answer_in_openai_schema(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/v1/nothing", timeout=5)
    assert response.status_code == 404
    assert "Unknown path" in response.json()["error"]["message"]


def test_every_worker_and_envoy_acked_one_version(gateway: Gateway, tmp_path: Path) -> None:
    status = gateway.status()
    version = status["policy"]["version"]  # type: ignore[index]
    clients = status["clients"]
    assert isinstance(clients, list) and len(clients) == 3
    for client_status in clients:
        assert set(client_status["acked"].values()) == {version}
        assert client_status["nacked"] == {}


def test_every_request_gets_one_json_access_log_line(gateway: Gateway) -> None:
    httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "log-probe"}, timeout=5)
    line = gateway.access_log_line('"log-probe"')
    assert line["status"] == 404
    assert (line["path"], line["model"]) == ("/v1/chat/completions", "log-probe")
    assert line["request_id"]
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{", timeout=5)
    refused = gateway.access_log_line(response.headers["x-request-id"])
    assert (refused["status"], refused["model"]) == (400, "-")  # no model read
