"""`gateway.admission: envoy`: Envoy admits a request it can forward alone with no worker call
at all (control_plane/compiler/lane.py), admits one that only the worker's attempts can
process (translated, fallbacks, a body it cannot edit exactly) with no admission call, and
leaves every other request to the worker's exact admission: unknown keys, teams with rate
limits or model lists that exclude the model, providers whose credential Envoy cannot read,
and budgets close to their limit.

Counted with Envoy's own ext_proc statistics (admission and attempts); usage and costs
checked against the recorded fixtures' usage, priced by hand as in test_metering.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from control_plane.compiler.lane import MAX_TRANSLATED_BYTES
from control_plane.keys import create_key
from ext_proc.contract import ClientApi
from ext_proc.translators.anthropic_openai import AnthropicToOpenAI
from ext_proc.translators.anthropic_openai_request import to_openai
from ext_proc.translators.base import Backend
from ext_proc.translators.common import DEFAULT_ANTHROPIC_VERSION
from ext_proc.translators.openai_anthropic import OpenAIToAnthropic, openai_completion
from ext_proc.translators.openai_anthropic_request import to_anthropic
from tests.fakes.provider_server import (
    CUT_AT_HEADER,
    FIXTURES,
    WHOLE_STREAM_HEADER,
    ProviderServer,
)
from tests.integration.test_metering import (
    ANTHROPIC_PLAIN,
    ANTHROPIC_STREAM,
    CHAT,
    OPENAI_PLAIN,
    OPENAI_STREAM,
)
from tests.integration.test_metrics import value, wait_for
from tests.support.gateway import Gateway, start_gateway
from tests.support.metering import cost_of, tokens_of, usage_record
from tests.support.sse import named_events

pytestmark = pytest.mark.integration

KEY, KEY_HASH = create_key("search")
TIGHT_KEY, TIGHT_HASH = create_key("tight")
LIMITED_KEY, LIMITED_HASH = create_key("limited")
NARROW_KEY, NARROW_HASH = create_key("narrow")
COUNTED_KEY, COUNTED_HASH = create_key("counted")
# Two OPENAI_PLAIN requests leave less than half of it: the third is the worker's to decide.
TIGHT_LIMIT = "0.004"
ADMISSIONS = "switchboard_admissions_total"

POLICY = """
gateway: {{reply_cost: false, admission: envoy, budget_headroom: 0.5}}
providers:
  oai: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1", api_key: env:OAI_KEY}}
  claude: {{kind: anthropic, base_url: "http://127.0.0.1:{port}", api_key: "file:{key_file}"}}
  claude-elsewhere: {{kind: anthropic, base_url: "http://127.0.0.1:{port}/elsewhere",
                     api_key: "file:{key_file}"}}
  keyless: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1", api_key: env:UNSET_KEY}}
  elsewhere: {{kind: openai, base_url: "http://127.0.0.1:{port}/elsewhere/v1",
              api_key: env:OAI_KEY}}
models:
  gpt-4o-mini: {{targets: [{{provider: oai}}]}}
  claude-haiku-4-5: {{targets: [{{provider: claude}}]}}
  gpt-4.1: {{targets: [{{provider: keyless}}]}}
  gpt-4o: {{targets: [{{provider: elsewhere}}]}}
  fast: {{targets: [{{provider: oai, model: gpt-4o-mini}}]}}
  haiku: {{targets: [{{provider: claude, model: claude-haiku-4-5}}]}}
  claude-lost: {{targets: [{{provider: claude-elsewhere, model: claude-haiku-4-5}}]}}
  either: {{targets: [{{provider: oai, model: gpt-4o-mini}}, {{provider: claude,
                                                              model: claude-haiku-4-5}}]}}
prices:
  oai/gpt-4o-mini: {{input_per_mtok: 2, output_per_mtok: 8, cached_read_per_mtok: 1}}
  claude/claude-haiku-4-5: {{input_per_mtok: 3, output_per_mtok: 15,
                             cached_read_per_mtok: 0.3, cache_write_per_mtok: 3.75}}
teams:
  search:
    keys: [{key}]
    budget: {{limit_usd: 100, period: day}}
  tight:
    keys: [{tight}]
    budget: {{limit_usd: {tight_limit}, period: day}}
  limited:
    keys: [{limited}]
    rate_limit: {{requests_per_minute: 1000}}
  narrow:
    keys: [{narrow}]
    models: [claude-haiku-4-5]
  counted:
    keys: [{counted}]
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake: ProviderServer) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("lane")
    key_file = work / "claude.key"
    key_file.write_text("sk-ant-provider\n")  # read as the workers read it: stripped
    policy = POLICY.format(port=fake.port, key_file=key_file, key=KEY_HASH, tight=TIGHT_HASH,
                           limited=LIMITED_HASH, narrow=NARROW_HASH, counted=COUNTED_HASH,
                           tight_limit=TIGHT_LIMIT)
    gateway = start_gateway(policy, work, env={"OAI_KEY": "sk-provider"})
    _wait_for_headroom(gateway, {"team:search", "team:tight"})
    yield gateway
    gateway.stop()


def _wait_for_headroom(gateway: Gateway, budgets: set[str], timeout_s: float = 10) -> None:
    """Until the control plane has read the budgets and given them to Envoy's lane."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in reversed(gateway.log().splitlines()):
            if '"budget headroom changed"' in line:
                if budgets <= set(json.loads(line)["with_headroom"]):
                    return
                break
        time.sleep(0.1)
    raise AssertionError(f"budgets {budgets} never got headroom:\n{gateway.log()[-3000:]}")


def _client(gateway: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=10)


def _messages(gateway: Gateway) -> tuple[int, int]:
    return gateway.admission_messages(), gateway.worker_messages()


def test_a_request_with_headroom_reaches_no_worker_at_all(
        gateway: Gateway, fake: ProviderServer) -> None:
    before = _messages(gateway)
    raw = _client(gateway, KEY).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    assert raw.http_response.status_code == 200
    assert _messages(gateway) == before  # neither admission nor an attempt called a worker
    sent: dict[str, Any] = fake.last
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == "Bearer sk-provider"  # not the gateway key
    assert not any(name.startswith("x-switchboard-") for name in sent["headers"])
    assert "accept-encoding" not in sent["headers"]
    row = usage_record(gateway.ledger_path, raw.headers["x-request-id"])
    assert cost_of(row) == OPENAI_PLAIN
    assert tokens_of(row) == (1200, 7, 1024, 0, 0)
    assert (row["team"], row["key_id"], row["requested_model"]) == ("search", KEY_HASH,
                                                                    "gpt-4o-mini")
    assert row["outcome"] == "ok" and row["status"] == 200


@pytest.mark.parametrize("headers", [
    {"authorization": f"bearer \t {KEY}"},  # the scheme in any case, space before the key
    {"authorization": f"Basic {KEY}", "x-api-key": KEY},  # not Bearer: x-api-key
    {"authorization": "Bearer", "x-api-key": KEY},  # a scheme alone: x-api-key
])
def test_a_key_written_any_way_the_workers_read_is_admitted_by_envoy(
        gateway: Gateway, headers: dict[str, str]) -> None:
    before = _messages(gateway)
    reply = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10, headers=headers,
                       json={"model": "gpt-4o-mini", "messages": CHAT})
    assert reply.status_code == 200, reply.text
    assert _messages(gateway) == before
    assert usage_record(gateway.ledger_path, reply.headers["x-request-id"])["key_id"] == KEY_HASH


def test_an_anthropic_client_gets_the_key_envoy_read_from_a_file(
        gateway: Gateway, fake: ProviderServer) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=10)
    before = _messages(gateway)
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=64,
        messages=[{"role": "user", "content": "Hello there"}])
    assert raw.parse().usage.output_tokens == 9
    assert _messages(gateway) == before
    sent = fake.last["headers"]
    assert sent["x-api-key"] == "sk-ant-provider" and sent["anthropic-version"]
    assert "authorization" not in sent
    assert cost_of(usage_record(gateway.ledger_path, raw.headers["x-request-id"])) \
        == ANTHROPIC_PLAIN


# A body whose top-level "model" is preceded by values that look like one to a careless
# reader: a string holding `"model": "fast"`, a nested object with the same key, numbers,
# literals, an array and a string ending in an escaped backslash, with uneven spacing.
TRICKY_BODY = (b'{ "metadata" : {"model": "fast", "tags": ["a", {"b": [1, 2]}]},\n'
               b' "messages": [{"role": "user", "content": "say \\"model\\": \\"fast\\" {["}],'
               b' "n":1, "logprobs" :false, "user": "C:\\\\",\t"model"  :  "fast" ,"top_p": 0.5e0}')


def test_a_renamed_model_is_rewritten_in_the_body_by_envoy_alone(
        gateway: Gateway, fake: ProviderServer) -> None:
    """Only the top-level value changes; every other byte reaches the provider as sent."""
    before = _messages(gateway)
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=TRICKY_BODY,
                          timeout=10, headers={"authorization": f"Bearer {KEY}",
                                               "content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert _messages(gateway) == before
    sent: dict[str, Any] = fake.last
    assert sent["raw"].encode() == TRICKY_BODY.replace(
        b'"model"  :  "fast"', b'"model"  :  "gpt-4o-mini"')
    assert int(sent["headers"]["content-length"]) == len(sent["raw"].encode())
    assert sent["headers"]["authorization"] == "Bearer sk-provider"
    row = usage_record(gateway.ledger_path, response.headers["x-request-id"])
    assert (row["requested_model"], row["provider"], row["provider_model"]) == (
        "fast", "oai", "gpt-4o-mini")
    assert cost_of(row) == OPENAI_PLAIN


def test_a_renamed_anthropic_stream_is_forwarded_alone_and_metered(
        gateway: Gateway, fake: ProviderServer) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=10)
    before = _messages(gateway)
    with client.messages.with_streaming_response.create(
            model="haiku", max_tokens=64, stream=True,
            messages=[{"role": "user", "content": "Hello there"}]) as stream:
        events = [line for line in stream.iter_lines() if line.startswith("event:")]
        request_id = stream.headers["x-request-id"]
    assert events[-1] == "event: message_stop"
    assert _messages(gateway) == before
    assert fake.last["body"]["model"] == "claude-haiku-4-5"
    row = usage_record(gateway.ledger_path, request_id)
    assert (row["requested_model"], row["provider_model"]) == ("haiku", "claude-haiku-4-5")
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0


def test_a_large_renamed_body_is_renamed_by_envoy_alone(
        gateway: Gateway, fake: ProviderServer) -> None:
    """Larger than Envoy's default 1 MiB buffer: the gateway's own bound holds in the lane."""
    content = "x" * (3 * 1024 * 1024)
    before = _messages(gateway)
    response = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=20, json={
        "model": "fast", "messages": [{"role": "user", "content": content}]},
        headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.text
    assert _messages(gateway) == before
    assert fake.last["body"] == {"model": "gpt-4o-mini",
                                 "messages": [{"role": "user", "content": content}]}


def _stream_chunks(gateway: Gateway, model: str, **options: Any) -> tuple[list[Any], str]:
    client = _client(gateway, KEY)
    with client.chat.completions.with_streaming_response.create(
            model=model, messages=CHAT, stream=True, **options) as response:  # type: ignore[arg-type]
        return list(response.parse()), response.headers["x-request-id"]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "fast"])
def test_an_openai_stream_that_did_not_ask_for_its_usage_is_metered_by_envoy_alone(
        gateway: Gateway, fake: ProviderServer, model: str) -> None:
    """The lane asks the provider for the usage, and takes the usage event out of the reply
    (the fake sends the stream in pieces that cut through events)."""
    before = _messages(gateway)
    chunks, request_id = _stream_chunks(gateway, model)
    assert _messages(gateway) == before
    assert fake.last["body"]["stream_options"] == {"include_usage": True}
    assert fake.last["body"]["model"] == "gpt-4o-mini"
    assert all(chunk.choices for chunk in chunks)  # no usage event: the client did not ask
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Bonjour à vous, ☃ 🎉!"
    assert chunks[-1].choices[0].finish_reason == "stop"
    row = usage_record(gateway.ledger_path, request_id)
    assert tokens_of(row)[:3] == (1100, 6, 1024) and not row["estimated"]
    assert row["requested_model"] == model


@pytest.mark.parametrize("options", [{}, {"stream_options": {"include_usage": False}}],
                         ids=["lane", "worker"])
def test_a_stream_sent_with_a_length_loses_the_length_with_its_usage_event(
        gateway: Gateway, fake: ProviderServer, options: dict[str, Any]) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10, json={
        "model": "gpt-4o-mini", "messages": CHAT, "stream": True, **options},
        headers={"authorization": f"Bearer {KEY}", WHOLE_STREAM_HEADER: "1"})
    assert fake.last["headers"][WHOLE_STREAM_HEADER] == "1"
    assert "content-length" not in response.headers
    assert b'"choices":[]' not in response.content
    assert response.content.endswith(b"data: [DONE]\n\n")


OPENAI_SSE = (FIXTURES / "openai" / "streams" / "text.sse").read_bytes()


@pytest.mark.parametrize("inside", ['" à vous', '"prompt_tokens"'],
                         ids=["a text event", "the usage event"])
def test_a_stream_the_provider_cuts_inside_an_event_reaches_the_client_as_sent(
        gateway: Gateway, fake: ProviderServer, inside: str) -> None:
    """The usage event's remover holds an unfinished event until the next chunk; at the
    stream's end what it holds goes on, and the request is metered as cut."""
    cut = OPENAI_SSE.index(inside.encode())
    response = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10, json={
        "model": "gpt-4o-mini", "messages": CHAT, "stream": True},
        headers={"authorization": f"Bearer {KEY}", CUT_AT_HEADER: str(cut)})
    assert fake.last["body"]["stream_options"] == {"include_usage": True}  # the lane's
    assert response.status_code == 200
    assert response.content == OPENAI_SSE[:cut]
    row = usage_record(gateway.ledger_path, response.headers["x-request-id"])
    assert row["estimated"]


def test_an_openai_stream_that_asked_for_its_usage_keeps_the_usage_event(
        gateway: Gateway, fake: ProviderServer) -> None:
    before = _messages(gateway)
    chunks, _ = _stream_chunks(gateway, "gpt-4o-mini", stream_options={"include_usage": True})
    assert _messages(gateway) == before
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 1100


def test_stream_options_that_decline_the_usage_are_left_to_the_workers_attempts(
        gateway: Gateway, fake: ProviderServer) -> None:
    admission, attempts = _messages(gateway)
    chunks, _ = _stream_chunks(gateway, "gpt-4o-mini", stream_options={"include_usage": False})
    # Admitted by Envoy, the body changed by the worker.
    assert gateway.admission_messages() == admission
    assert gateway.worker_messages() > attempts
    assert fake.last["body"]["stream_options"] == {"include_usage": True}  # the worker's
    assert all(chunk.choices for chunk in chunks)


@pytest.mark.parametrize("body", [
    b'{"model": "fast", "messages": [], "model": "fast"}',  # which one would a provider read?
    b'{"model": "f\\u0061st", "messages": []}',  # the value as written is not the name
    b'{"model": "fast", "mod\\u0065l": "fast", "messages": []}',  # a key spelt with an escape
], ids=["named-twice", "escaped-value", "escaped-key"])
def test_a_body_the_lane_cannot_rename_exactly_is_left_to_the_workers_attempts(
        gateway: Gateway, fake: ProviderServer, body: bytes) -> None:
    admission, attempts = _messages(gateway)
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=body, timeout=10,
                          headers={"authorization": f"Bearer {KEY}",
                                   "content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert gateway.admission_messages() == admission
    assert gateway.worker_messages() > attempts
    assert fake.last["body"]["model"] == "gpt-4o-mini"
    assert not any(name.startswith("x-switchboard-") for name in fake.last["headers"])
    row = usage_record(gateway.ledger_path, response.headers["x-request-id"])
    assert (row["team"], row["key_id"]) == ("search", KEY_HASH)


@pytest.mark.parametrize(("path", "body", "message"), [
    ("/v1/chat/completions", b'{"model": "gpt-4o-mini", "messages": [tru]}', "not valid JSON"),
    ("/v1/chat/completions", b'{"messages": []}', "no 'model' field"),
    ("/v1/messages", b'{"model": ["haiku"], "max_tokens": 5, "messages": []}',
     "no 'model' field"),
    ("/v1/messages", b'{"model": "haiku", "messages": "\xff"}', "not valid JSON"),
])
def test_a_body_the_lane_cannot_read_is_refused_in_the_clients_schema(
        gateway: Gateway, path: str, body: bytes, message: str) -> None:
    response = httpx.post(f"{gateway.url}{path}", content=body, timeout=10, headers={
        "authorization": f"Bearer {KEY}", "content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()
    if path == "/v1/messages":
        assert error["type"] == "error"
    assert message in error["error"]["message"]


def test_a_translated_request_is_translated_by_envoy_alone(
        gateway: Gateway, fake: ProviderServer) -> None:
    """Text turns: the lane translates the request and its reply (compiler/lua/
    openai_anthropic.lua) as the worker's translator does, and no worker sees it."""
    before = _messages(gateway)
    messages = [{"role": "system", "content": "Be brief."}, *CHAT]
    raw = _client(gateway, KEY).chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=messages, max_tokens=64,  # type: ignore[arg-type]
        temperature=0.5, stop="END", user="u-7")
    assert _messages(gateway) == before  # no admission call, no attempt call
    sent: dict[str, Any] = fake.last
    assert sent["path"] == "/v1/messages"
    assert sent["body"] == to_anthropic({"messages": messages, "max_tokens": 64,
                                         "temperature": 0.5, "stop": "END", "user": "u-7"},
                                        "claude-haiku-4-5")
    assert int(sent["headers"]["content-length"]) == len(sent["raw"].encode())
    assert sent["headers"]["x-api-key"] == "sk-ant-provider"  # not the gateway key
    assert sent["headers"]["anthropic-version"] == DEFAULT_ANTHROPIC_VERSION
    assert "authorization" not in sent["headers"]
    assert not any(name.startswith("x-switchboard-") for name in sent["headers"])
    # The reply, as the worker would have written it from the same provider reply.
    fixture = (FIXTURES / "anthropic" / "responses" / "text.json").read_bytes()
    expected = orjson.loads(openai_completion(orjson.loads(fixture), "claude-haiku-4-5",
                                              0).body or b"")
    reply = json.loads(raw.http_response.content)
    assert abs(reply.pop("created") - time.time()) < 60
    assert reply == {key: value for key, value in expected.items() if key != "created"}
    assert int(raw.headers["content-length"]) == len(raw.http_response.content)
    assert raw.headers["content-type"] == "application/json"
    row = usage_record(gateway.ledger_path, raw.headers["x-request-id"])
    assert (row["team"], row["key_id"], row["requested_model"], row["provider_model"]) == (
        "search", KEY_HASH, "claude-haiku-4-5", "claude-haiku-4-5")
    # Read from the provider's reply, in its schema: cache writes are Anthropic's alone.
    assert tokens_of(row) == (12 + 100 + 2048, 9, 2048, 100, 0)
    assert row["outcome"] == "ok" and cost_of(row) == ANTHROPIC_PLAIN
    # The access log names the path the client called, not the provider's.
    line = gateway.access_log_line(raw.headers["x-request-id"])
    assert (line["path"], line["model"]) == ("/v1/chat/completions", "claude-haiku-4-5")


@pytest.mark.parametrize("include_usage", [True, False])
def test_a_translated_stream_is_translated_by_envoy_alone(
        gateway: Gateway, fake: ProviderServer, include_usage: bool) -> None:
    """Event by event, as the fake sends them in small pieces; metered from Anthropic's own
    events, whether or not the client asked for its usage."""
    before = _messages(gateway)
    with _client(gateway, KEY).chat.completions.with_streaming_response.create(
            model="claude-haiku-4-5", messages=CHAT, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": include_usage}) as raw:
        chunks = [chunk.model_dump(exclude={"created"}) for chunk in raw.parse()]
        request_id = raw.headers["x-request-id"]
    assert _messages(gateway) == before
    assert fake.last["body"]["stream"] is True
    translator = OpenAIToAnthropic(ClientApi.OPENAI_CHAT, Backend(
        "claude", "anthropic", "", "claude-haiku-4-5"))
    translator.request({"messages": CHAT, "stream_options": {
        "include_usage": include_usage}}, b"")
    translator.response_body_mode(200, {"content-type": "text/event-stream"})
    stream = (FIXTURES / "anthropic" / "streams" / "text.sse").read_bytes()
    expected = [orjson.loads(event.removeprefix(b"data: ")) for event in (
        translator.response_chunk(stream, True).body or b"").split(b"\n\n")
        if event and event != b"data: [DONE]"]
    assert chunks == [openai.types.chat.ChatCompletionChunk.model_validate(event).model_dump(
        exclude={"created"}) for event in expected]
    assert (chunks[-1]["usage"] is not None) == include_usage
    row = usage_record(gateway.ledger_path, request_id)
    assert (row["team"], row["key_id"]) == ("search", KEY_HASH)
    # The synchronous SDK closes the connection at [DONE], maybe before the provider's
    # stream has ended: it had the whole answer all the same.
    assert row["outcome"] == "ok"
    assert tokens_of(row) == (25 + 1024, 15, 1024, 0, 0) and not row["estimated"]
    assert cost_of(row) == ANTHROPIC_STREAM


def test_a_translated_stream_sent_whole_loses_its_length(gateway: Gateway) -> None:
    """A provider that sends its stream in one piece with a content-length: the translated
    events have another length, so the client gets none. Read to its end: served."""
    response = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10, headers={
        "authorization": f"Bearer {KEY}", WHOLE_STREAM_HEADER: "1"}, json={
        "model": "claude-haiku-4-5", "messages": CHAT, "stream": True})
    assert response.status_code == 200
    assert "content-length" not in response.headers
    assert response.text.endswith("data: [DONE]\n\n")
    row = usage_record(gateway.ledger_path, response.headers["x-request-id"])
    assert row["outcome"] == "ok" and cost_of(row) == ANTHROPIC_STREAM


def test_a_conversation_with_tools_is_translated_by_envoy_alone(
        gateway: Gateway, fake: ProviderServer) -> None:
    """Tool definitions, the assistant's calls and their results (the recorded fixture)."""
    body = orjson.loads((FIXTURES / "openai" / "requests" / "tools.json").read_bytes())
    body["model"] = "claude-haiku-4-5"
    before = _messages(gateway)
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=10,
                          headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.text
    assert _messages(gateway) == before
    assert fake.last["body"] == to_anthropic(body, "claude-haiku-4-5")
    assert response.json()["object"] == "chat.completion"


def test_a_request_envoy_cannot_translate_is_translated_by_the_workers_attempt(
        gateway: Gateway, fake: ProviderServer) -> None:
    """A role spelled with an escape is beyond the lane's reader (it compares names as
    written): the worker's attempt translates it, and reads the whole reply in one message
    (its headers skipped, the status sent with the body, the length dropped: it changed)."""
    admission, attempts = _messages(gateway)
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions", timeout=10,
        headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"},
        content=b'{"model":"claude-haiku-4-5","messages":[{"role":"\\u0075ser",'
                b'"content":"Hello there"}]}')
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"
    assert gateway.admission_messages() == admission
    assert gateway.worker_messages() == attempts + 3
    assert fake.last["body"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hello there"}]}]
    assert "content-length" not in response.headers
    row = usage_record(gateway.ledger_path, response.headers["x-request-id"])
    assert (row["team"], row["key_id"]) == ("search", KEY_HASH)
    assert row["outcome"] == "ok" and cost_of(row) == ANTHROPIC_PLAIN


def test_a_large_body_is_translated_by_the_workers_attempt(
        gateway: Gateway, fake: ProviderServer) -> None:
    """Above MAX_TRANSLATED_BYTES, off Envoy's threads."""
    messages = [{"role": "user", "content": "x" * (MAX_TRANSLATED_BYTES + 1)}]
    admission, attempts = _messages(gateway)
    reply = _client(gateway, KEY).chat.completions.create(
        model="claude-haiku-4-5", messages=messages)  # type: ignore[arg-type]
    assert reply.object == "chat.completion"
    assert gateway.admission_messages() == admission
    assert gateway.worker_messages() == attempts + 3
    assert fake.last["body"] == to_anthropic({"messages": messages}, "claude-haiku-4-5")


def test_an_anthropic_client_of_an_openai_model_is_translated_by_envoy_alone(
        gateway: Gateway, fake: ProviderServer) -> None:
    """The other direction (compiler/lua/anthropic_openai.lua), whole requests; metered from
    the OpenAI reply's usage."""
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=10)
    messages = [{"role": "user", "content": "Hello there"}]
    before = _messages(gateway)
    raw = client.messages.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=64, system="Be brief.",
        messages=messages)  # type: ignore[arg-type]
    assert _messages(gateway) == before
    sent: dict[str, Any] = fake.last
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"] == to_openai({"max_tokens": 64, "system": "Be brief.",
                                      "messages": messages}, "gpt-4o-mini")
    assert sent["headers"]["authorization"] == "Bearer sk-provider"
    assert "x-api-key" not in sent["headers"]
    translator = AnthropicToOpenAI(ClientApi.ANTHROPIC_MESSAGES, Backend(
        "oai", "openai", "", "gpt-4o-mini"))
    translator.response_body_mode(200, {})
    fixture = (FIXTURES / "openai" / "responses" / "text.json").read_bytes()
    assert json.loads(raw.http_response.content) == orjson.loads(
        translator.response_body(fixture).body or b"")
    assert raw.parse().usage.output_tokens == 7
    row = usage_record(gateway.ledger_path, raw.headers["x-request-id"])
    assert tokens_of(row) == (1200, 7, 1024, 0, 0) and cost_of(row) == OPENAI_PLAIN


def test_an_anthropic_stream_of_an_openai_model_is_translated_by_envoy_alone(
        gateway: Gateway, fake: ProviderServer) -> None:
    """OpenAI's chunks become Anthropic's events as they arrive; the request asks for the
    usage chunk, which meters it."""
    client = anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=10)
    before = _messages(gateway)
    with client.messages.with_streaming_response.create(
            model="gpt-4o-mini", max_tokens=64, stream=True,
            messages=[{"role": "user", "content": "Hi"}]) as raw:
        body = b"".join(raw.iter_bytes())
        request_id = raw.headers["x-request-id"]
    assert _messages(gateway) == before
    assert fake.last["body"]["stream_options"] == {"include_usage": True}
    translator = AnthropicToOpenAI(ClientApi.ANTHROPIC_MESSAGES, Backend(
        "oai", "openai", "", "gpt-4o-mini"))
    translator.response_body_mode(200, {"content-type": "text/event-stream"})
    stream = (FIXTURES / "openai" / "streams" / "text.sse").read_bytes()
    assert named_events(body) == named_events(translator.response_chunk(stream, True).body or b"")
    row = usage_record(gateway.ledger_path, request_id)
    assert (row["outcome"], row["estimated"]) == ("ok", 0)
    assert tokens_of(row) == (1100, 6, 1024, 0, 0) and cost_of(row) == OPENAI_STREAM
    # And as the SDK reads it.
    with client.messages.stream(model="gpt-4o-mini", max_tokens=64,
                                messages=[{"role": "user", "content": "Hi"}]) as events:
        final = events.get_final_message()
    assert final.usage.output_tokens == 6 and final.stop_reason == "end_turn"
    assert _messages(gateway) == before


def test_a_translated_error_keeps_its_status(gateway: Gateway) -> None:
    """The provider's 404 (its base URL has a path this fake does not serve), translated by
    Envoy, reaches the client as an OpenAI error with the same status."""
    before = _messages(gateway)
    with pytest.raises(openai.NotFoundError) as lost:
        _client(gateway, KEY).chat.completions.create(
            model="claude-lost", messages=CHAT)  # type: ignore[arg-type]
    assert _messages(gateway) == before
    assert isinstance(lost.value.body, dict)
    assert "no such path" in lost.value.body["message"]  # an error shaped as OpenAI's
    assert lost.value.body["code"] == "not_found"
    row = usage_record(gateway.ledger_path, lost.value.response.headers["x-request-id"])
    assert (row["outcome"], row["status"]) == ("upstream_error", 404)
    assert cost_of(row) == 0


def test_a_model_with_fallbacks_is_admitted_by_envoy_for_the_workers_attempts(
        gateway: Gateway, fake: ProviderServer) -> None:
    admission, attempts = _messages(gateway)
    reply = _client(gateway, KEY).chat.completions.create(
        model="either", messages=CHAT)  # type: ignore[arg-type]
    assert reply.usage is not None
    assert gateway.admission_messages() == admission
    assert gateway.worker_messages() > attempts


def test_the_lanes_admissions_are_counted_when_the_requests_end(gateway: Gateway) -> None:
    client = _client(gateway, COUNTED_KEY)
    admission = gateway.admission_messages()
    for model in ("gpt-4o-mini", "either", "gpt-4o-mini"):  # alone, attempts, alone
        client.chat.completions.create(model=model, messages=CHAT)  # type: ignore[arg-type]
    assert gateway.admission_messages() == admission  # admitted by the lane
    admitted = {"team": "counted", "outcome": "admitted"}
    wait_for(gateway, ADMISSIONS, 2, **admitted, gen_ai_request_model="gpt-4o-mini")
    text = wait_for(gateway, ADMISSIONS, 1, **admitted, gen_ai_request_model="either")
    assert value(text, ADMISSIONS, **admitted, gen_ai_request_model="gpt-4o-mini") == 2


def test_the_providers_path_does_not_change_the_route(
        gateway: Gateway, fake: ProviderServer) -> None:
    """The lane rewrites :path without Envoy choosing the route again: the request reaches the
    provider under its own path, which this fake does not serve (its 404, not the gateway's)."""
    before = _messages(gateway)
    response = httpx.post(f"{gateway.url}/v1/chat/completions", timeout=10, json={
        "model": "gpt-4o", "messages": CHAT}, headers={"authorization": f"Bearer {KEY}"})
    assert (response.status_code, response.json()) == (404, {"error": "no such path"})
    assert fake.last["path"] == "/elsewhere/v1/chat/completions"
    assert _messages(gateway) == before
    row = usage_record(gateway.ledger_path, response.headers["x-request-id"])
    assert (row["outcome"], row["status"]) == ("upstream_error", 404)


def test_an_unknown_key_is_refused_by_the_worker_in_the_clients_schema(
        gateway: Gateway) -> None:
    admission = gateway.admission_messages()
    with pytest.raises(openai.AuthenticationError) as refused:
        _client(gateway, "sb-not-a-key").chat.completions.create(
            model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    assert isinstance(refused.value.body, dict)
    assert gateway.admission_messages() > admission


def test_a_team_outside_its_models_is_refused_by_the_worker(gateway: Gateway) -> None:
    admission = gateway.admission_messages()
    with pytest.raises(openai.PermissionDeniedError):
        _client(gateway, NARROW_KEY).chat.completions.create(
            model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    assert gateway.admission_messages() > admission


def test_a_team_with_a_rate_limit_is_admitted_by_the_worker(gateway: Gateway) -> None:
    admission = gateway.admission_messages()
    reply = _client(gateway, LIMITED_KEY).chat.completions.create(
        model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    assert reply.usage is not None
    assert gateway.admission_messages() > admission


def test_a_provider_whose_key_envoy_cannot_read_is_left_to_the_worker(
        gateway: Gateway) -> None:
    admission = gateway.admission_messages()
    with pytest.raises(openai.APIStatusError) as failed:
        _client(gateway, KEY).chat.completions.create(
            model="gpt-4.1", messages=CHAT)  # type: ignore[arg-type]
    assert failed.value.status_code == 503  # the worker cannot read it either
    assert gateway.admission_messages() > admission


def test_a_budget_close_to_its_limit_is_kept_exactly_by_the_worker(gateway: Gateway) -> None:
    client = _client(gateway, TIGHT_KEY)
    for _ in range(2):  # with headroom: Envoy admits them
        before = _messages(gateway)
        client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
        assert _messages(gateway) == before
        time.sleep(1.5)  # the usage is recorded and the budget read again
    admission = gateway.admission_messages()
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    # The worker reserved the request's worst case against what is left, and refused.
    assert gateway.admission_messages() > admission
    assert int(refused.value.response.headers["retry-after"]) > 0
    # So does a request Envoy would otherwise have admitted for the worker's attempts.
    admission = gateway.admission_messages()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="either", messages=CHAT)  # type: ignore[arg-type]
    assert gateway.admission_messages() > admission


def test_the_lane_is_a_filter_configuration_of_its_own(gateway: Gateway) -> None:
    """Delivered over ECDS: budget changes reach Envoy without touching the listener."""
    config = httpx.get(f"http://127.0.0.1:{gateway.envoy_admin_port}/config_dump",
                       params={"resource": "ecds_filters"}, timeout=5).json()
    names = [c["ecds_filter"]["name"] for c in config["configs"]]
    assert names == ["switchboard.lane"]


@pytest.fixture(scope="module")
def costing_gateway(tmp_path_factory: pytest.TempPathFactory,
                    fake: ProviderServer) -> Iterator[Gateway]:
    """The same policy with the cost in every reply: nothing is forwarded alone."""
    work = tmp_path_factory.mktemp("lane-costing")
    key_file = work / "claude.key"
    key_file.write_text("sk-ant-provider\n")
    policy = POLICY.replace("reply_cost: false, ", "").format(
        port=fake.port, key_file=key_file, key=KEY_HASH, tight=TIGHT_HASH,
        limited=LIMITED_HASH, narrow=NARROW_HASH, counted=COUNTED_HASH, tight_limit=TIGHT_LIMIT)
    gateway = start_gateway(policy, work, env={"OAI_KEY": "sk-provider"})
    _wait_for_headroom(gateway, {"team:search"})
    yield gateway
    gateway.stop()


def test_with_the_cost_in_replies_envoy_admits_for_the_workers_attempts(
        costing_gateway: Gateway, fake: ProviderServer) -> None:
    gateway = costing_gateway
    admission, attempts = _messages(gateway)
    raw = _client(gateway, KEY).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    assert gateway.admission_messages() == admission
    assert gateway.worker_messages() > attempts  # the attempt prices the reply
    assert Decimal(raw.headers["x-switchboard-cost-usd"]) == OPENAI_PLAIN
    assert fake.last["headers"]["authorization"] == "Bearer sk-provider"
    assert not any(name.startswith("x-switchboard-") for name in fake.last["headers"])
    row = usage_record(gateway.ledger_path, raw.headers["x-request-id"])
    assert (row["team"], row["key_id"]) == ("search", KEY_HASH)
    # What the lane cannot decide is still the worker's admission's.
    with pytest.raises(openai.AuthenticationError):
        _client(gateway, "sb-not-a-key").chat.completions.create(
            model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    assert gateway.admission_messages() > admission
