"""The Anthropic Messages API through the real Envoy: the official SDKs against the mock
provider and a fake upstream that replays recorded Anthropic and OpenAI answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.provider_server import ProviderServer
from tests.support.provider import running_provider

pytestmark = pytest.mark.integration

LISTENER, FAKE, XDS, ADMIN, ENVOY_ADMIN = 20950, 20951, 20952, 20953, 20954
GATEWAY = f"http://127.0.0.1:{LISTENER}"
POLICY = f"""
providers:
  claude: {{kind: anthropic, base_url: "http://127.0.0.1:{FAKE}",
           api_key: "env:TEST_ANTHROPIC_KEY"}}
  llama: {{kind: openai, base_url: "http://127.0.0.1:{FAKE}/v1"}}
  demo: {{kind: mock}}
models:
  claude: {{targets: [{{provider: claude, model: claude-sonnet-4-5}}]}}
  llama: {{targets: [{{provider: llama, model: llama-3.1-8b}}]}}
  mock: {{targets: [{{provider: demo}}]}}
"""
HELLO: list[MessageParam] = [{"role": "user", "content": "Hello there"}]
HELLO_CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderServer]:
    with running_provider(FAKE) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake: ProviderServer) -> Iterator[str]:
    policy = tmp_path_factory.mktemp("policy") / "policy.yaml"
    policy.write_text(POLICY)
    command = [str(Path(sys.executable).with_name("switchboard")), "up", "--policy", str(policy),
               "--listener-port", str(LISTENER), "--xds-port", str(XDS),
               "--admin-port", str(ADMIN), "--envoy-admin-port", str(ENVOY_ADMIN)]
    process = subprocess.Popen(command, env={**os.environ, "TEST_ANTHROPIC_KEY": "sk-ant-test"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready()
        yield GATEWAY
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def _wait_ready() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{GATEWAY}/v1/models").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the gateway did not come up")


@pytest.fixture
def client(gateway: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway, api_key="gateway-key", max_retries=0)


@pytest.mark.parametrize("model", ["mock", "claude", "llama"])
def test_messages_create(client: anthropic.Anthropic, model: str) -> None:
    message = client.messages.create(model=model, max_tokens=50, messages=HELLO)
    assert message.content[0].type == "text"
    assert message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["mock", "claude", "llama"])
def test_messages_stream(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(model=model, max_tokens=50, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"


def test_anthropic_upstream_gets_its_credential_only(client: anthropic.Anthropic,
                                                     fake: ProviderServer) -> None:
    client.messages.create(model="claude", max_tokens=5, messages=HELLO,
                           extra_headers={"anthropic-beta": "tools-2024-04-04"})
    headers = fake.last["headers"]
    assert headers["x-api-key"] == "sk-ant-test"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "tools-2024-04-04"
    assert "authorization" not in headers
    assert fake.last["body"]["model"] == "claude-sonnet-4-5"


def test_openai_client_on_anthropic_backend(gateway: str) -> None:
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="gateway-key", max_retries=0)
    completion = client.chat.completions.create(model="claude", messages=HELLO_CHAT)
    assert completion.choices[0].message.content == "Hello! How can I help?"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 12 + 2048 + 100
    chunks = list(client.chat.completions.create(
        model="claude", messages=HELLO_CHAT, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None


def test_unknown_model_in_anthropic_schema(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="nope", max_tokens=5, messages=HELLO)
    assert caught.value.body["type"] == "error"  # type: ignore[index]
