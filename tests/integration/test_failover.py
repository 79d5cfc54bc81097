"""Failover through the real Envoy under every kind of provider fault.

One gateway for the module. The fakes fail only when a request asks them to (header
`x-fault-<name>`, see tests/fakes/fault_server.py), so every test picks its own fault and the
healthy target must serve every request, translated for its own schema.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import orjson
import pytest

from tests.fakes.fault_server import FaultServer, Request
from tests.support.gateway import Gateway, start_gateway
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

IDLE_TIMEOUT_S = 1.0
POLICY = """
providers:
  primary: {{kind: openai, base_url: "{primary}/v1", api_key: env:PRIMARY_KEY}}
  backup: {{kind: openai, base_url: "{backup}/v1", api_key: env:BACKUP_KEY}}
  claude: {{kind: anthropic, base_url: "{claude}", api_key: env:CLAUDE_KEY}}
  gone: {{kind: openai, base_url: "http://127.0.0.1:{closed}/v1", api_key: env:PRIMARY_KEY}}
defaults:
  per_try_idle_timeout: {idle}s
  # Ejection would make later tests skip the faulty target; one model tests it alone.
  outlier_detection: {{enabled: false}}
models:
  pair: {{targets: [{{provider: primary, model: p-model}}, {{provider: backup, model: b-model}}]}}
  cross: {{targets: [{{provider: primary}}, {{provider: claude, model: claude-x}}]}}
  refused: {{targets: [{{provider: gone}}, {{provider: backup}}]}}
  patient: {{targets: [{{provider: primary}}], retries: 1}}
  solo: {{targets: [{{provider: primary}}]}}
  claude-solo: {{targets: [{{provider: claude}}]}}
  ejecting:
    targets: [{{provider: primary}}, {{provider: backup}}]
    outlier_detection: {{enabled: true, consecutive_5xx: 2, base_ejection_time: 60s}}
  canary:
    strategy: weighted
    targets: [{{provider: primary, weight: 90}}, {{provider: backup, weight: 10}}]
    fallbacks: [{{provider: claude, model: claude-fallback}}]
"""
HELLO = [{"role": "user", "content": "hello"}]


@dataclass
class Fakes:
    primary: FaultServer
    backup: FaultServer
    claude: FaultServer

    def clear(self) -> None:
        for fake in (self.primary, self.backup, self.claude):
            fake.received.clear()


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    started = Fakes(FaultServer("primary").start(), FaultServer("backup").start(),
                    FaultServer("claude").start())
    yield started
    for fake in (started.primary, started.backup, started.claude):
        fake.stop()


@pytest.fixture(scope="module")
def gateway(fakes: Fakes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    policy = POLICY.format(primary=fakes.primary.base_url, backup=fakes.backup.base_url,
                           claude=fakes.claude.base_url, closed=free_port(), idle=IDLE_TIMEOUT_S)
    gw = start_gateway(policy, tmp_path_factory.mktemp("failover"), env={
        "PRIMARY_KEY": "primary-key", "BACKUP_KEY": "backup-key", "CLAUDE_KEY": "claude-key"})
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def _clear(fakes: Fakes) -> None:
    fakes.clear()


def _client(gateway: Gateway, **faults: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0,
                         timeout=20, default_headers={f"x-fault-{name}": fault
                                                      for name, fault in faults.items()})


def _only(fake: FaultServer, model: str) -> Request:
    [request] = [r for r in fake.received if r.body.get("model") == model]
    return request


def _stream_text(client: openai.OpenAI, model: str) -> str:
    chunks = list(client.chat.completions.create(model=model, messages=HELLO,  # type: ignore[arg-type]
                                                 stream=True))
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", ["500", "503", "429", "reset", "hang"])
def test_every_fault_before_the_first_byte_fails_over(
        gateway: Gateway, fakes: Fakes, fault: str, stream: bool) -> None:
    client = _client(gateway, primary=fault)
    started = time.monotonic()
    if stream:
        text = _stream_text(client, "pair")
    else:
        raw = client.chat.completions.with_raw_response.create(model="pair", messages=HELLO)  # type: ignore[arg-type]
        text = raw.parse().choices[0].message.content or ""
        assert raw.headers["x-switchboard-provider"] == "backup"
        assert raw.headers["x-switchboard-model"] == "b-model"
    elapsed = time.monotonic() - started
    assert text == "backup answers b-model"
    assert _only(fakes.primary, "p-model").headers["authorization"] == "Bearer primary-key"
    served = _only(fakes.backup, "b-model")
    assert served.path == "/v1/chat/completions"
    assert served.headers["authorization"] == "Bearer backup-key"
    assert served.headers["x-envoy-attempt-count"] == "2"
    if fault == "hang":
        assert IDLE_TIMEOUT_S <= elapsed < IDLE_TIMEOUT_S + 2
    else:
        assert elapsed < 1


def test_a_refused_connection_fails_over(gateway: Gateway, fakes: Fakes) -> None:
    raw = _client(gateway).chat.completions.with_raw_response.create(
        model="refused", messages=HELLO)  # type: ignore[arg-type]
    assert raw.parse().choices[0].message.content == "backup answers refused"
    assert raw.headers["x-switchboard-provider"] == "backup"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_failover_from_openai_to_anthropic_translates_for_each(
        gateway: Gateway, fakes: Fakes, stream: bool) -> None:
    client = _client(gateway, primary="503")
    if stream:
        text = _stream_text(client, "cross")
        assert text == "Bonjour à vous, ☃ 🎉!"
    else:
        raw = client.chat.completions.with_raw_response.create(model="cross", messages=HELLO)  # type: ignore[arg-type]
        assert raw.parse().choices[0].message.content == "Hello! How can I help?"
        assert raw.headers["x-switchboard-provider"] == "claude"
        assert raw.headers["x-switchboard-model"] == "claude-x"
    assert _only(fakes.primary, "cross").headers["authorization"] == "Bearer primary-key"
    served = _only(fakes.claude, "claude-x")
    assert served.path == "/v1/messages"
    assert served.headers["x-api-key"] == "claude-key"
    assert served.headers["anthropic-version"] == "2023-06-01"
    # The first attempt's credential must not follow the request to the second provider.
    assert "authorization" not in served.headers
    assert served.body["messages"] == [{"role": "user",
                                        "content": [{"type": "text", "text": "hello"}]}]
    assert served.body["max_tokens"] > 0


def test_a_short_retry_after_is_waited_for(gateway: Gateway, fakes: Fakes) -> None:
    client = _client(gateway, primary="fail-first:1:429:1#short")
    started = time.monotonic()
    completion = client.chat.completions.create(model="patient", messages=HELLO)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert completion.choices[0].message.content == "primary answers patient"
    assert len(fakes.primary.received) == 2
    assert 1.0 <= elapsed < 2.5


def test_a_long_retry_after_does_not_delay_the_failover(gateway: Gateway, fakes: Fakes) -> None:
    started = time.monotonic()
    completion = _client(gateway, primary="429:30").chat.completions.create(
        model="pair", messages=HELLO)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "backup answers b-model"
    assert time.monotonic() - started < 1


def test_when_every_target_fails_the_client_gets_the_last_error_in_its_schema(
        gateway: Gateway, fakes: Fakes) -> None:
    response = httpx.post(f"{gateway.url}/v1/messages", timeout=10, headers={
        "x-fault-primary": "503", "x-fault-claude": "503"}, json={
        "model": "cross", "max_tokens": 5, "messages": HELLO})
    assert response.status_code == 503
    assert response.json()["type"] == "error"
    assert len(fakes.primary.received) == len(fakes.claude.received) == 1


def test_a_failing_target_is_ejected_and_then_skipped(gateway: Gateway, fakes: Fakes) -> None:
    failing = _client(gateway, primary="500")
    for _ in range(2):
        assert failing.chat.completions.create(model="ejecting", messages=HELLO)  # type: ignore[arg-type]
    assert len(fakes.primary.received) == 2
    for _ in range(3):  # healthy again, but ejected: requests go straight to the backup
        raw = _client(gateway).chat.completions.with_raw_response.create(
            model="ejecting", messages=HELLO)  # type: ignore[arg-type]
        assert raw.headers["x-switchboard-provider"] == "backup"
    assert len(fakes.primary.received) == 2
    assert [r.headers["x-envoy-attempt-count"] for r in fakes.backup.received[-3:]] == ["1"] * 3


def test_a_weighted_split_fails_over_to_its_fallback(gateway: Gateway, fakes: Fakes) -> None:
    for _ in range(3):
        raw = _client(gateway, primary="503", backup="503").chat.completions.with_raw_response \
            .create(model="canary", messages=HELLO)  # type: ignore[arg-type]
        assert raw.parse().choices[0].message.content == "Hello! How can I help?"
        assert raw.headers["x-switchboard-provider"] == "claude"
        assert raw.headers["x-switchboard-model"] == "claude-fallback"
    assert len(fakes.primary.received) + len(fakes.backup.received) == 3


def _sse(response: httpx.Response) -> list[tuple[str, bytes]]:
    events = []
    for block in response.content.split(b"\n\n"):
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        if fields:
            events.append((fields.get(b"event", b"message").decode(), fields.get(b"data", b"")))
    return events


@pytest.mark.parametrize(("path", "model", "fault"), [
    ("/v1/chat/completions", "solo", "primary"),  # OpenAI to OpenAI, passed through
    ("/v1/chat/completions", "claude-solo", "claude"),  # OpenAI client, Anthropic stream
    ("/v1/messages", "solo", "primary"),  # Anthropic client, OpenAI stream
    ("/v1/messages", "claude-solo", "claude"),  # Anthropic to Anthropic, passed through
])
def test_a_stream_that_ends_without_its_terminator_ends_with_an_error_event(
        gateway: Gateway, path: str, model: str, fault: str) -> None:
    response = httpx.post(f"{gateway.url}{path}", timeout=10, headers={
        f"x-fault-{fault}": "truncate"}, json={
        "model": model, "max_tokens": 5, "stream": True, "messages": HELLO})
    assert response.status_code == 200
    events = _sse(response)
    assert len(events) > 1  # some of the answer went out before the cut
    event, data = events[-1]
    if path == "/v1/messages":
        assert event == "error"
        assert orjson.loads(data)["type"] == "error"
        assert all(e != "message_stop" for e, _ in events)
    else:
        assert orjson.loads(data)["error"]["type"] == "server_error"
        assert all(d != b"[DONE]" for _, d in events)


def test_the_openai_sdk_raises_on_a_cut_stream(gateway: Gateway) -> None:
    stream = _client(gateway, primary="truncate").chat.completions.create(
        model="solo", messages=HELLO, stream=True)  # type: ignore[arg-type]
    with pytest.raises(openai.APIError, match="ended before the answer was complete"):
        list(stream)


@pytest.mark.parametrize("fault", ["break", "stall"])
def test_a_stream_reset_or_stalled_midway_resets_the_client_connection(
        gateway: Gateway, fault: str) -> None:
    received: list[bytes] = []

    def read() -> None:
        with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", timeout=10,
                          headers={"x-fault-primary": fault},
                          json={"model": "solo", "stream": True, "messages": HELLO}) as response:
            received.extend(response.iter_bytes())

    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        read()
    if fault == "stall":  # cut by the per-try idle timeout, not by the provider
        assert IDLE_TIMEOUT_S <= time.monotonic() - started < IDLE_TIMEOUT_S + 2
    assert b"".join(received).startswith(b"data: ")
    assert b"[DONE]" not in b"".join(received)
