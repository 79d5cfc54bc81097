"""The lane's Anthropic -> OpenAI translation (control_plane/compiler/lua/anthropic_openai.lua),
run in a real Envoy's LuaJIT, gives what the workers' translator gives (ext_proc/translators/
anthropic_openai.py) for every request it takes, and leaves every other request to a worker:
the recorded fixtures (tests/fixtures/anthropic, tests/fixtures/openai) and edge cases of the
mapping, each marked with what the Lua must do with it; and OpenAI's streams, translated into
Anthropic's events as a worker translates them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ext_proc.contract import ClientApi
from ext_proc.translators.anthropic_openai import AnthropicToOpenAI
from ext_proc.translators.anthropic_openai_request import to_openai
from ext_proc.translators.base import Backend
from ext_proc.translators.common import usage_from_openai
from tests.support.lua_envoy import lua_envoy, reported_usage, translation_harness
from tests.support.sse import named_events

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODEL = "gpt-4o-mini"
BACKEND = Backend("oai", "openai", "https://api.openai.com/v1", MODEL)


@pytest.fixture(scope="module")
def lua_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with lua_envoy(translation_harness(MODEL), tmp_path_factory.mktemp("translation")) as url:
        yield url + "anthropic_openai/"


def _fixture_request(name: str) -> bytes:
    """The fixture, whole (not streamed)."""
    body = orjson.loads((FIXTURES / "anthropic" / "requests" / f"{name}.json").read_bytes())
    body.pop("stream", None)
    return orjson.dumps(body)


def _messages(*messages: Any, **fields: Any) -> bytes:
    return orjson.dumps({"model": "any", "max_tokens": 64, "messages": list(messages),
                         **fields})


USER = {"role": "user", "content": "Hi"}
CALL = {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": [1, "é"]}}

TRANSLATED: dict[str, bytes] = {
    **{f"fixture {path.stem}": _fixture_request(path.stem)
       for path in sorted((FIXTURES / "anthropic" / "requests").iterdir())},
    "system as blocks, sampling, stops and user": _messages(
        USER, system=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        temperature=1, top_p=0.5, stop_sequences=["x", "y"], metadata={"user_id": "u"}),
    "empty stops and metadata without a user": _messages(USER, stop_sequences=[],
                                                         metadata={"other": 1}),
    "several text blocks stay parts": _messages({"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
    "tool results before the rest of the turn": _messages(
        USER, {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"},
                                                {"type": "text", "text": "Let me see."}, CALL,
                                                {**CALL, "id": "t2", "input": None}]},
        {"role": "user", "content": [
            {"type": "text", "text": "and?"},
            {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
            {"type": "tool_result", "tool_use_id": "t2"},
            {"type": "tool_result", "tool_use_id": "t3", "content": None},
            {"type": "tool_result", "tool_use_id": "t4",
             "content": [{"type": "text", "text": "x"}]}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t5",
                                      "content": ""}]}),
    "a tool call without input": _messages(USER, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f"}]}),
    "tool choices": _messages(USER, tools=[{"name": "f", "input_schema": {},
                                            "description": "d"}],
                              tool_choice={"type": "tool", "name": "f",
                                           "disable_parallel_tool_use": True}),
    "a choice without tools": _messages(USER, tools=[], tool_choice={"type": "later"}),
    "nulls read as absent": _messages(USER, system=None, temperature=None, tools=None,
                                      stop_sequences=None, metadata=None, stream=False),
    "a stream asks for its usage": _messages(USER, stream=True),
    "a stream of the fixture": _fixture_request("basic")[:-1] + b',"stream":true}',
}

LEFT_TO_A_WORKER: dict[str, bytes] = {
    "a stream of the wrong type": _messages(USER, stream="yes"),
    "no max_tokens": orjson.dumps({"model": "m", "messages": [USER]}),
    "max_tokens 0": _messages(USER, max_tokens=0),
    "no messages": _messages(),
    "unknown role": _messages({"role": "system", "content": "x"}),
    "a document block": _messages({"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "data": "x"}}]}),
    "an image without a source": _messages({"role": "user", "content": [{"type": "image"}]}),
    "system with an image": _messages(USER, system=[{"type": "image"}]),
    "a tool call without an id": _messages(USER, {"role": "assistant", "content": [
        {"type": "tool_use", "name": "f"}]}),
    "a tool result without its call": _messages({"role": "user", "content": [
        {"type": "tool_result", "content": "x"}]}),
    "a tool without a name": _messages(USER, tools=[{"input_schema": {}}]),
    "an unknown tool choice": _messages(USER, tools=[{"name": "f"}],
                                        tool_choice={"type": "sometimes"}),
    "a tool choice not an object": _messages(USER, tool_choice="auto"),
    "stops not a list": _messages(USER, stop_sequences="x"),
    "metadata not an object": _messages(USER, metadata="u"),
    "a role spelled with an escape": b'{"model":"m","max_tokens":5,"messages":[{"role":'
                                     b'"\\u0075ser","content":"x"}]}',
}


@pytest.mark.parametrize("case", TRANSLATED)
def test_the_lane_translates_as_the_worker_does(lua_url: str, case: str) -> None:
    raw = TRANSLATED[case]
    response = httpx.post(f"{lua_url}request", content=raw, timeout=5)
    assert response.status_code == 200, f"{case}: left to a worker"
    translated, expected = orjson.loads(response.content), to_openai(orjson.loads(raw), MODEL)
    for body in (translated, expected):  # arguments: the same JSON, spaces aside
        for message in body["messages"]:
            for call in message.get("tool_calls", []):
                call["function"]["arguments"] = orjson.loads(call["function"]["arguments"])
    assert translated == expected


@pytest.mark.parametrize("case", LEFT_TO_A_WORKER)
def test_what_the_lane_does_not_know_is_left_to_a_worker(lua_url: str, case: str) -> None:
    response = httpx.post(f"{lua_url}request", content=LEFT_TO_A_WORKER[case], timeout=5)
    assert response.status_code == 204


def _reply_cases() -> dict[str, tuple[int, bytes]]:
    cases = {f"fixture {path.stem}": (200, path.read_bytes())
             for path in sorted((FIXTURES / "openai" / "responses").iterdir())}
    cases |= {f"fixture error {path.stem}": (int(path.stem[:3]), path.read_bytes())
              for path in sorted((FIXTURES / "openai" / "errors").iterdir())}
    choice = {"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "f", "arguments": '{"a": [1, "\\u00e9"]}'}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{oops"}},
            {"id": "c3", "type": "function", "function": {"name": "h", "arguments": "[1]"}},
            {"type": "function", "function": {"name": "i"}}, "not a call"]}}
    return cases | {
        "tool calls, malformed arguments kept": (200, orjson.dumps({
            "id": "x", "model": "", "choices": [choice],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2,
                      "prompt_tokens_details": {"cached_tokens": 4}}})),
        "no usage, unknown finish reason": (200, orjson.dumps({"choices": [{
            "finish_reason": "later", "message": {"content": "hé"}}]})),
        "more cached than prompted": (200, orjson.dumps({"choices": [{"message": {}}],
                                                         "usage": {"prompt_tokens": 1,
                                                                   "prompt_tokens_details": {
                                                                       "cached_tokens": 3}}})),
        "no choices": (200, b'{"choices": []}'),
        "unreadable answer": (200, b"<html>oops</html>"),
        "error without a message": (404, b'{"error": "no such path"}'),
        "error as text": (503, b"upstream broke"),
        "error status without a kind": (418, b'{"error": {"message": "teapot"}}'),
    }


REPLIES = _reply_cases()


@pytest.mark.parametrize("case", REPLIES)
def test_the_lane_translates_replies_as_the_worker_does(lua_url: str, case: str) -> None:
    status, raw = REPLIES[case]
    translator = AnthropicToOpenAI(ClientApi.ANTHROPIC_MESSAGES, BACKEND)
    translator.response_body_mode(status, {"content-type": "application/json"})
    translated = translator.response_body(raw)
    assert translated.body is not None
    reply = httpx.post(f"{lua_url}reply/{status}", content=raw, timeout=5)
    assert orjson.loads(reply.content) == orjson.loads(translated.body)
    # The usage the access log then carries, read as the worker reads it.
    usage = reported_usage(reply)
    assert (usage_from_openai(usage) if usage else None) == translated.usage


def test_a_failed_translation_answers_an_anthropic_error(lua_url: str) -> None:
    assert httpx.post(f"{lua_url}failure", timeout=5).json() == {"type": "error", "error": {
        "type": "api_error", "message": "the gateway could not translate the provider's answer"}}


def _chunk(delta: dict[str, Any], finish: str | None = None, **fields: Any) -> bytes:
    return b"data: " + orjson.dumps({
        "id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": None,
        **fields}) + b"\n\n"


def _call(index: int, call_id: str | None = None, name: str | None = None,
          arguments: str | None = None) -> dict[str, Any]:
    function = {key: value for key, value in (("name", name), ("arguments", arguments))
                if value is not None}
    return {"index": index, **({"id": call_id} if call_id else {}), "function": function}


USAGE_CHUNK = (b'data: {"id":"chatcmpl-s","choices":[],"usage":{"prompt_tokens":30,'
               b'"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":10}}}\n\n')
DONE = b"data: [DONE]\n\n"
# An event's line end and its blank line, every way the format allows (a CR then an LF would
# be one line end, CRLF, not two).
LINE_ENDS = ((b"\r", b"\r"), (b"\r\n", b"\r"), (b"\n", b"\r"), (b"\r", b"\r\n"),
             (b"\n", b"\r\n"), (b"\r\n", b"\n"), (b"\r\n", b"\r\n"))

STREAMS = {
    **{path.stem: path.read_bytes()
       for path in sorted((FIXTURES / "openai" / "streams").iterdir())},
    "calls interleaved, the others kept for the end": b"".join((
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"tool_calls": [_call(0, "c0", "f", '{"a":'), _call(1, "c1", "g", "{")]}),
        _chunk({"tool_calls": [_call(1, arguments='"b": 2}'), _call(0, arguments=' 1}')]}),
        _chunk({"tool_calls": [_call(2, "c2", "h")]}),
        _chunk({"content": "and text \u00e9 \"quoted\"\n"}),
        _chunk({}, "tool_calls"), USAGE_CHUNK, DONE)),
    "a new call reusing its index, text between": b"".join((
        _chunk({"tool_calls": [_call(0, "a", "f", "{}")]}),
        _chunk({"tool_calls": [_call(0, "b", "g", "[1]")]}),
        _chunk({"content": "x"}), _chunk({"tool_calls": [_call(0, arguments="{}")]}),
        _chunk({}, "length"), USAGE_CHUNK, DONE)),
    "odd values read as the worker reads them": b"".join((
        b": a comment\r\n\r\n", b"event: ping\ndata: [1]\n\n", b"data: not json\n\n",
        _chunk({"content": None, "tool_calls": {"not": "a list"}}, choices=[]),
        _chunk({"content": ""}, "mystery"),
        _chunk({"tool_calls": [_call(1, "x"), "not a call", {"index": "3", "id": "y"}]}),
        b"data:  [DONE] \r\n\r\n")),
    # Chunks that only add text are found without being read whole: each of these must read
    # as a chunk read whole does.
    "text chunks written every way": b"".join((
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "plain"}), _chunk({"content": "null tools", "tool_calls": None}),
        _chunk({"content": "spaced"}).replace(b'":', b'" :\t').replace(b",", b" ,\n "),
        b'data: {"choices":[{"delta":{"content":"first"}}],"choices":[{"delta":{"content":'
        b'"last choices win"},"delta":{"content":"last delta wins"}}]}\n\n',
        _chunk({"content": "an error that is text"}, error="no"),
        _chunk({"content": "with an escape \" \n"}), _chunk({"content": ""}),
        _chunk({"content": "a usage", "tool_calls": []}, usage={"prompt_tokens": 3}),
        _chunk({"content": "nested " * 3, "extra": [[[[[[[[[[{"a": [1e2, True]}]]]]]]]]]]}),
        _chunk({"content": "and its finish"}, "stop"), USAGE_CHUNK, DONE)),
    "an error before anything": b'data: {"error": {"type": "x"}}\n\n',
    "no finish reason before [DONE]": _chunk({"content": "hi"}) + DONE,
    "nothing but [DONE]": DONE,
    "written with spaces, CRLF": b"".join(
        b"data: " + json.dumps(json.loads(line[6:])).encode() + b"\r\n\r\n"
        if line.startswith(b"data: {") else line + b"\r\n\r\n"
        for line in (FIXTURES / "openai" / "streams" / "tool_calls.sse").read_bytes().split(
            b"\n\n") if line),
    "CR, CRLF and LF line ends": b"".join(
        event + b"".join(LINE_ENDS[at % len(LINE_ENDS)])
        for at, event in enumerate(
            (FIXTURES / "openai" / "streams" / "tool_calls.sse").read_bytes().split(b"\n\n"))
        if event),
}


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
@pytest.mark.parametrize("case", STREAMS)
def test_the_lane_translates_streams_as_the_worker_does(lua_url: str, case: str,
                                                        size: int) -> None:
    """Fed in pieces of `size` bytes: split inside lines, CRLFs and UTF-8 sequences. What a
    worker adds when the body ends without [DONE] (an error event) the lane cannot: its
    filter does not see the end of a body. A worker fed the same pieces without that end
    gives the same events."""
    raw = STREAMS[case]
    translator = AnthropicToOpenAI(ClientApi.ANTHROPIC_MESSAGES, BACKEND)
    assert translator.response_body_mode(200, {"content-type": "text/event-stream"}) \
        == "streamed"
    outputs = [translator.response_chunk(raw[at:at + size], False)
               for at in range(0, len(raw), size)]
    translated = httpx.post(f"{lua_url}stream/1/{size}", content=raw, timeout=5)
    wanted = named_events(b"".join(output.body or b"" for output in outputs))
    assert wanted  # every case yields events
    assert named_events(translated.content) == wanted
    final = [output.usage for output in outputs if output.usage is not None]
    usage = reported_usage(translated)
    assert (usage_from_openai(usage) if usage else None) == (final[-1] if final else None)


def test_a_whole_stream_ends_with_message_stop_and_its_usage(lua_url: str) -> None:
    events = named_events(httpx.post(f"{lua_url}stream/1/64", content=STREAMS["text"],
                                timeout=5).content)
    assert [name for name, _ in events][-2:] == ["message_delta", "message_stop"]
    assert events[0][1]["message"]["usage"]["output_tokens"] == 0
    assert events[-2][1]["usage"]["output_tokens"] > 0


def test_a_body_ended_early_ends_without_message_stop(lua_url: str) -> None:
    events = named_events(httpx.post(f"{lua_url}stream/1/64", content=STREAMS["truncated"],
                                timeout=5).content)
    assert events and "message_stop" not in [name for name, _ in events]
    # A worker, seeing the end of the body, adds an error event.
    translator = AnthropicToOpenAI(ClientApi.ANTHROPIC_MESSAGES, BACKEND)
    translator.response_body_mode(200, {"content-type": "text/event-stream"})
    ended = named_events(translator.response_chunk(STREAMS["truncated"], True).body or b"")
    assert ended[:-1] == events and ended[-1][0] == "error"
