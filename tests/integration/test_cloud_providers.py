"""Azure OpenAI, Bedrock, Gemini and Vertex backends through the real Envoy, driven by the
official SDKs, against fakes that check each provider's credential (Bedrock's SigV4 signature
is recomputed from the request as received; Vertex tokens come from a fake token endpoint
named in the service account's key file)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.fakes.cloud_server import CloudFake
from tests.support.cloud import BEDROCK_MODEL, start_cloud_gateway
from tests.support.gateway import Gateway

pytestmark = pytest.mark.integration

BACKENDS = ["azure", "bedrock", "gemini", "vertex"]
WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


MODELS = f"""
models:
  azure-chat: {{targets: [{{provider: azure, model: gpt-4o-deployment}}]}}
  azure-embed: {{targets: [{{provider: azure, model: embed-deployment}}]}}
  bedrock-chat: {{targets: [{{provider: bedrock, model: "{BEDROCK_MODEL}"}}]}}
  bedrock-bad: {{targets: [{{provider: bedrock, model: "bad.model-v1:0"}}]}}
  bedrock-embed: {{targets: [{{provider: bedrock, model: "amazon.titan-embed-text-v2:0"}}]}}
  gemini-chat: {{targets: [{{provider: gemini, model: gemini-2.5-flash}}]}}
  gemini-embed: {{targets: [{{provider: gemini, model: text-embedding-004}}]}}
  vertex-chat: {{targets: [{{provider: vertex, model: gemini-2.5-flash}}]}}
  vertex-embed: {{targets: [{{provider: vertex, model: text-embedding-005}}]}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[CloudFake]:
    server = CloudFake().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake: CloudFake) -> Iterator[Gateway]:
    running = start_cloud_gateway(MODELS, fake, tmp_path_factory.mktemp("cloud"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="gateway-key", max_retries=0)


HELLO: Any = [{"role": "user", "content": "Hello there"}]


@pytest.mark.parametrize("backend", BACKENDS)
def test_chat(client: openai.OpenAI, backend: str) -> None:
    completion = client.chat.completions.create(model=f"{backend}-chat", messages=HELLO)
    assert "answers" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 7


@pytest.mark.parametrize("backend", BACKENDS)
def test_chat_stream(client: openai.OpenAI, backend: str) -> None:
    chunks = list(client.chat.completions.create(
        model=f"{backend}-chat", messages=HELLO, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "answers" in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7


# The Azure path passes OpenAI's stream through untouched; its plain case covers the path.
@pytest.mark.parametrize(("backend", "stream"), [
    (backend, stream) for backend in BACKENDS for stream in (False, True)
    if not (backend == "azure" and stream)])
def test_tools(client: openai.OpenAI, backend: str, stream: bool) -> None:
    arguments: Any = {"model": f"{backend}-chat", "tools": [WEATHER_TOOL],
                      "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    if stream:
        with client.chat.completions.stream(**arguments) as events:
            completion = events.get_final_completion()
    else:
        completion = client.chat.completions.create(**arguments)
    calls = completion.choices[0].message.tool_calls or []
    assert completion.choices[0].finish_reason == "tool_calls"
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_embeddings(client: openai.OpenAI, backend: str) -> None:
    # The SDK asks for base64 and decodes it: the vector must come back as numbers.
    result = client.embeddings.create(model=f"{backend}-embed", input="hello")
    assert len(result.data) == 1
    assert all(isinstance(v, float) for v in result.data[0].embedding)
    assert result.data[0].embedding


def test_anthropic_sdk_on_bedrock(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="gateway-key", max_retries=0)
    message = client.messages.create(model="bedrock-chat", max_tokens=50, messages=HELLO)
    assert message.content[0].type == "text"
    assert "bedrock answers" in message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 7
    with client.messages.stream(model="bedrock-chat", max_tokens=50, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == message.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 11


def test_bedrock_requests_are_signed_for_the_encoded_path(gateway: Gateway,
                                                          fake: CloudFake) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="gateway-key",
                           max_retries=0)
    client.chat.completions.create(model="bedrock-chat", messages=HELLO)
    last = fake.received[-1]
    assert last["path"] == "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    assert last["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert "gateway-key" not in json.dumps(last["headers"])


def test_provider_error_in_the_clients_schema(gateway: Gateway,
                                              client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="bedrock-bad", messages=HELLO)
    assert refused.value.body["message"] == (  # type: ignore[index]
        "The provided model identifier is invalid.")
    messages = anthropic.Anthropic(base_url=gateway.url, api_key="gateway-key", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        messages.messages.create(model="bedrock-bad", max_tokens=5, messages=HELLO)
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_models_list_in_both_shapes(gateway: Gateway) -> None:
    openai_shape = httpx.get(f"{gateway.url}/v1/models").json()
    assert openai_shape["object"] == "list"
    client = anthropic.Anthropic(base_url=gateway.url, api_key="gateway-key", max_retries=0)
    ids = [model.id for model in client.models.list()]
    assert ids == sorted(item["id"] for item in openai_shape["data"])
