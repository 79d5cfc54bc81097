"""The lane's OpenAI -> Anthropic translation (control_plane/compiler/lua/openai_anthropic.lua),
run in a real Envoy's LuaJIT, gives what the workers' translator gives (ext_proc/translators/
openai_anthropic.py) for every request it takes, and leaves every other request to a worker:
the recorded fixtures (tests/fixtures/openai, tests/fixtures/anthropic) and edge cases of the
JSON and of the mapping, each marked with what the Lua must do with it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Backend
from ext_proc.translators.common import usage_from_anthropic
from ext_proc.translators.openai_anthropic import OpenAIToAnthropic
from ext_proc.translators.openai_anthropic_request import to_anthropic
from tests.support.lua_envoy import lua_envoy, reported_usage, translation_harness

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODEL = "claude-haiku-4-5"
BACKEND = Backend("claude", "anthropic", "https://api.anthropic.com", MODEL)

URL = "openai_anthropic/"


@pytest.fixture(scope="module")
def lua_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with lua_envoy(translation_harness(MODEL), tmp_path_factory.mktemp("translation")) as url:
        yield url + URL


def _fixture_request(name: str) -> bytes:
    """The fixture, whole (not streamed)."""
    body = orjson.loads((FIXTURES / "openai" / "requests" / f"{name}.json").read_bytes())
    body.pop("stream", None)
    body.pop("stream_options", None)
    return orjson.dumps(body)


def _chat(*messages: dict[str, Any], **fields: Any) -> bytes:
    return orjson.dumps({"model": "any", "messages": list(messages), **fields})


USER = {"role": "user", "content": "Hi"}

TRANSLATED: dict[str, bytes] = {
    "fixture basic": _fixture_request("basic"),
    "fixture system_and_params": _fixture_request("system_and_params"),
    "fixture system_and_params streamed": (
        FIXTURES / "openai" / "requests" / "system_and_params.json").read_bytes(),
    "a stream without options": _chat(USER, stream=True),
    "consecutive turns merged": _chat(USER, {"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "x"}, {"role": "assistant", "content": "y"}),
    "system and developer joined": _chat(
        {"role": "system", "content": "one"}, USER,
        {"role": "developer", "content": [{"type": "text", "text": "tw"},
                                          {"type": "text", "text": "o"}]}),
    "assistant without text": _chat(USER, {"role": "assistant", "content": ""},
                                    {"role": "assistant", "content": None},
                                    {"role": "assistant", "tool_calls": []}, USER),
    "assistant refusal left out": _chat(USER, {"role": "assistant", "content": [
        {"type": "refusal", "refusal": "no"}, {"type": "text", "text": "ok"}]}),
    "parameters": _chat(USER, n=1, temperature=0, top_p=0.95, stop=["a", "b"], user="u-1",
                        stream=False, max_completion_tokens=7, max_tokens="ignored"),
    "n 0 and empty stop list": _chat(USER, n=0, stop=[], max_tokens=12),
    "fields the translation ignores": _chat(USER, frequency_penalty=0.5, seed=3,
                                            response_format={"type": "text"},
                                            stream_options={"include_usage": True},
                                            logprobs=False, name=None),
    "nulls read as absent": _chat(USER, temperature=None, stop=None, user=None, n=None,
                                  tools=None, max_tokens=None),
    "exponent number": b'{"model":"m","messages":[{"role":"user","content":"x"}],'
                       b'"temperature":1E-1,"top_p":-0.5e+1}',
    "escapes kept": b'{"model":"m","messages":[{"role":"user","content":'
                    b'"line\\n\\"q\\" \\\\ \\/ \\u00e9 \\ud83d\\ude00 \\\\u0041"}]}',
    "a string ending in an escaped backslash": b'{"model":"m","messages":[{"role":"user",'
                                               b'"content":"C:\\\\"}],"user":"\\u00e9"}',
    "utf-8 text": '{"model":"m","messages":[{"role":"system","content":"réponds"},'
                  '{"role":"user","content":"日本 😀"}]}'.encode(),
    "spaces everywhere": b' {\n "model" : "m" ,\r\n\t"messages" : [ { "role" : "user" ,'
                         b' "content" : [ { "type" : "text" , "text" : " a " } ] } ] } \n',
    "fixture images": _fixture_request("images"),
    "images by URL": _chat({"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://example.com/a.png?x=1&y=%20"}},
        {"type": "image_url", "image_url": {"url": "data:image/svg+xml;base64,PHN2Zz4="}}]}),
    "fixture tools": _fixture_request("tools"),
    "fixture tool_choice_required": _fixture_request("tool_choice_required"),
    "tool results join the user's turn": _chat(
        USER, {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}},
            {"type": "function", "function": {"name": "g", "arguments": None}}]},
        {"role": "tool", "tool_call_id": "c1", "content": None},
        {"role": "tool", "tool_call_id": "c2", "content": ""},
        {"role": "tool", "tool_call_id": "c3", "content": [{"type": "text", "text": "a"},
                                                          {"type": "text", "text": "b"}]},
        USER),
    "arguments with escapes": _chat(USER, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {
            "name": "f", "arguments": '{"q": "café \\"x\\" \\u00e9 😀", "n": [1, 2.5e3], '
                                      '"o": {"a": null}}'}}]}),
    "tool choices": _chat(USER, tools=[{"type": "function", "function": {
        "name": "f", "parameters": {}, "description": "d"}}], tool_choice="none",
        parallel_tool_calls=False),
    "auto choice, parallel calls allowed": _chat(USER, tools=[{"type": "function", "function": {
        "name": "f"}}], tool_choice="auto", parallel_tool_calls=True),
    "no choice, parallel calls declined": _chat(USER, tools=[{"type": "function", "function": {
        "name": "f"}}], parallel_tool_calls=False),
    "a choice without tools": _chat(USER, tools=[], tool_choice={"function": {"name": "f"}},
                                    parallel_tool_calls=False),
    "a repeated key: the last wins": b'{"model":"m","messages":[{"role":"user","content":"a"}],'
                                     b'"messages":[{"role":"user","content":"b"}]}',
}

LEFT_TO_A_WORKER: dict[str, bytes] = {
    "stream of the wrong type": _chat(USER, stream="yes"),
    "n 2": _chat(USER, n=2),
    "n as a float": _chat(USER, n=1.0),
    "max_tokens 0": _chat(USER, max_tokens=0),
    "max_tokens fractional": _chat(USER, max_tokens=1.5),
    "max_completion_tokens of the wrong type": _chat(USER, max_completion_tokens="9",
                                                      max_tokens=9),
    "max_tokens beyond a double": b'{"model":"m","messages":[{"role":"user","content":"x"}],'
                                  b'"max_tokens":12345678901234567890}',
    "temperature a string": _chat(USER, temperature="hot"),
    "temperature a boolean": _chat(USER, temperature=True),
    "stop a number": _chat(USER, stop=5),
    "stop list with a number": _chat(USER, stop=["a", 1]),
    "user a number": _chat(USER, user=7),
    "tool without a name": _chat(USER, tools=[{"type": "function", "function": {}}]),
    "tool not a function": _chat(USER, tools=[{"type": "web", "function": {"name": "f"}}]),
    "tools not a list": _chat(USER, tools={"type": "function"}),
    "tool parameters not an object": _chat(USER, tools=[{"type": "function", "function": {
        "name": "f", "parameters": "{}"}}]),
    "tool description a number": _chat(USER, tools=[{"type": "function", "function": {
        "name": "f", "description": 1}}]),
    "unknown tool choice": _chat(USER, tool_choice="sometimes"),
    "tool choice without a function": _chat(USER, tool_choice={"type": "function"}),
    "parallel_tool_calls a string": _chat(USER, parallel_tool_calls="no"),
    "arguments not JSON": _chat(USER, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{city: Paris}"}}]}),
    "arguments an array": _chat(USER, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "[1]"}}]}),
    "arguments an object": _chat(USER, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}),
    "arguments with half a surrogate pair": b'{"model":"m","messages":[{"role":"assistant",'
        b'"tool_calls":[{"function":{"name":"f","arguments":"{\\"a\\":\\"\\ud800\\"}"}}]}]}',
    "tool call without a function name": _chat(USER, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"arguments": "{}"}}]}),
    "tool call id a number": _chat(USER, {"role": "assistant", "tool_calls": [
        {"id": 1, "type": "function", "function": {"name": "f"}}]}),
    "tool calls not a list": _chat(USER, {"role": "assistant", "tool_calls": {"id": "c"}}),
    "tool result without its call id": _chat(USER, {"role": "tool", "content": "r"}),
    "tool result content a number": _chat(USER, {"role": "tool", "tool_call_id": "c",
                                                 "content": 5}),
    "image of another scheme": _chat({"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}]}),
    "image data not base64": _chat({"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}),
    "image URL not a string": _chat({"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": 7}}]}),
    "image URL written with escapes": b'{"model":"m","messages":[{"role":"user","content":['
                                      b'{"type":"image_url","image_url":{"url":'
                                      b'"https:\\/\\/example.com\\/a.png"}}]}]}',
    "audio part": _chat({"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}),
    "unknown role": _chat({"role": "narrator", "content": "x"}),
    "role spelled with an escape": b'{"model":"m","messages":[{"role":"\\u0075ser",'
                                   b'"content":"x"}]}',
    "part type spelled with an escape": b'{"model":"m","messages":[{"role":"user","content":"x"}'
                                        b',{"role":"assistant","content":[{"type":"te\\u0078t",'
                                        b'"text":"y"}]}]}',
    "key spelled with an escape": b'{"model":"m","mess\\u0061ges":[],'
                                  b'"messages":[{"role":"user","content":"x"}]}',
    "system content null": _chat({"role": "system", "content": None}, USER),
    "system part not text": _chat({"role": "system", "content": [{"type": "image_url"}]}, USER),
    "user content a number": _chat({"role": "user", "content": 3}),
    "user part without text": _chat({"role": "user", "content": [{"type": "text"}]}),
    "message not an object": _chat("hello"),  # type: ignore[arg-type]
    "no messages": _chat(),
    "messages not a list": b'{"model":"m","messages":{"role":"user","content":"x"}}',
    "body not an object": b'[{"role":"user","content":"x"}]',
    "trailing comma": b'{"model":"m","messages":[{"role":"user","content":"x"},]}',
    "invalid escape": b'{"model":"m","messages":[{"role":"user","content":"\\x41"}]}',
    "short unicode escape": b'{"model":"m","messages":[{"role":"user","content":"\\u12"}]}',
    "unicode escape not hex": b'{"model":"m","messages":[{"role":"user","content":"\\u00zz"}]}',
    "overlong utf-8": b'{"model":"m","messages":[{"role":"user","content":"\xc0\xaf"}]}',
    "truncated utf-8": b'{"model":"m","messages":[{"role":"user","content":"\xe6\x97"}]}',
    "control character in a string": b'{"model":"m","messages":[{"role":"user",'
                                     b'"content":"a\tb"}]}',
    "invalid utf-8": b'{"model":"m","messages":[{"role":"user","content":"\xff\xfe"}]}',
    "encoded surrogate": b'{"model":"m","messages":[{"role":"user","content":"\xed\xa0\x80"}]}',
    "leading zero": _chat(USER)[:-1] + b',"max_tokens":012}',
    "text after the body": _chat(USER) + b"{}",
}


def _lua_request(url: str, raw: bytes) -> httpx.Response:
    return httpx.post(f"{url}request", content=raw, timeout=5)


@pytest.mark.parametrize("case", TRANSLATED)
def test_the_lane_translates_as_the_worker_does(lua_url: str, case: str) -> None:
    raw = TRANSLATED[case]
    response = _lua_request(lua_url, raw)
    assert response.status_code == 200, f"{case}: left to a worker"
    assert orjson.loads(response.content) == to_anthropic(orjson.loads(raw), MODEL)


@pytest.mark.parametrize("case", LEFT_TO_A_WORKER)
def test_what_the_lane_does_not_know_is_left_to_a_worker(lua_url: str, case: str) -> None:
    assert _lua_request(lua_url, LEFT_TO_A_WORKER[case]).status_code == 204


def _reply_cases() -> dict[str, tuple[int, bytes]]:
    cases = {f"fixture {path.stem}": (200, path.read_bytes())
             for path in sorted((FIXTURES / "anthropic" / "responses").iterdir())}
    cases |= {f"fixture error {path.stem}": (int(path.stem[:3]), path.read_bytes())
              for path in sorted((FIXTURES / "anthropic" / "errors").iterdir())}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
               "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 2}}
    return cases | {
        "no text": (200, orjson.dumps({**message, "content": []})),
        "empty text blocks": (200, orjson.dumps({**message, "content": [
            {"type": "text", "text": ""}, {"type": "thinking", "thinking": "hm"}]})),
        "no usage, no model, unknown stop reason": (200, orjson.dumps({
            "id": "msg_2", "content": [{"type": "text", "text": "é\n\"x\""}],
            "stop_reason": "later"})),
        "tool input with spaces": (200, b'{"id":"m","content":[{"type":"tool_use","id":"t",'
                                        b'"name":"f","input": { "a" : [1, "b c"] } }],'
                                        b'"stop_reason":"tool_use"}'),
        "unreadable answer": (200, b"<html>oops</html>"),
        "not an object": (200, b"[1]"),
        "error without a message": (404, b'{"error": "no such path"}'),
        "error in a list": (500, b'[{"error": {"message": "wrapped"}}]'),
        "error message at the top": (400, b'{"Message": "bedrock style"}'),
        "error as text": (502, b"  upstream broke \n"),
        "empty error": (503, b""),
        "error status without a kind": (418, b'{"error": {"message": "teapot"}}'),
    }


REPLIES = _reply_cases()


@pytest.mark.parametrize("case", REPLIES)
def test_the_lane_translates_replies_as_the_worker_does(lua_url: str, case: str) -> None:
    status, raw = REPLIES[case]
    translator = OpenAIToAnthropic(ClientApi.OPENAI_CHAT, BACKEND)
    translator.response_body_mode(status, {"content-type": "application/json"})
    translated = translator.response_body(raw)
    expected = translated.body
    assert expected is not None
    reply = httpx.post(f"{lua_url}reply/{status}", content=raw, timeout=5)
    # The usage the access log then carries, read as the worker reads it.
    usage = reported_usage(reply)
    assert (usage_from_anthropic(usage) if usage else None) == translated.usage
    actual = orjson.loads(reply.content)
    if "created" in actual:
        assert abs(actual.pop("created") - time.time()) < 60
    wanted = orjson.loads(expected)
    wanted.pop("created", None)
    for completion in (actual, wanted):  # arguments: the same JSON, spaces aside
        for call in completion.get("choices", [{}])[0].get("message", {}).get("tool_calls", []):
            call["function"]["arguments"] = orjson.loads(call["function"]["arguments"])
    assert actual == wanted


def _spaced(stream: bytes) -> bytes:
    """The stream with its data written with spaces (", ", ": "): the events the lane finds
    by their compact spelling then take its general path."""
    return b"\n".join(
        b"data: " + json.dumps(json.loads(line[6:])).encode()
        if line.startswith(b"data: {") else line for line in stream.split(b"\n"))


STREAMS = {path.stem: path.read_bytes()
           for path in sorted((FIXTURES / "anthropic" / "streams").iterdir())}
STREAMS["text written with spaces"] = _spaced(STREAMS["text"])


def _fields_spelled_otherwise(stream: bytes) -> bytes:
    """The stream with its events' lines written every other way the format allows: data
    over two lines, no space after the colon, CRLF, comments, fields the translation does
    not read (id, retry, a longer name starting with "data"), an event with no data."""
    events = []
    for at, event in enumerate(stream.split(b"\n\n")):
        if not event:
            continue
        name, data = event.split(b"\n", 1)
        payload = data.removeprefix(b"data: ")
        if at == 0:  # split where JSON allows a newline
            head, tail = payload.split(b",", 1)
            data = b"data: " + head + b",\r\ndata:" + tail
        elif at % 2:
            data = b"data:" + payload
        events.append(b"\r\n".join((b": keep-alive", b"id: " + str(at).encode(), name,
                                      b"retry: 100", b"dataX: ignored", data)))
    events.insert(1, b"event: ping")
    return b"\r\n\r\n".join(events) + b"\r\n\r\n"


STREAMS["fields spelled otherwise"] = _fields_spelled_otherwise(STREAMS["text"])
STREAMS["fields spelled otherwise, CR line ends"] = STREAMS["fields spelled otherwise"].replace(
    b"\r\n", b"\r")


def _events(stream: bytes) -> list[Any]:
    """A stream's events, each data as JSON ([DONE] as itself), `created` aside."""
    events: list[Any] = []
    for event in stream.decode().split("\n\n"):
        if not event:
            continue
        assert event.startswith("data: ") and "\n" not in event, event
        data = event.removeprefix("data: ")
        parsed = data if data == "[DONE]" else orjson.loads(data)
        if isinstance(parsed, dict) and "created" in parsed:
            assert abs(parsed.pop("created") - time.time()) < 60
        events.append(parsed)
    return events


@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
@pytest.mark.parametrize("case", STREAMS)
def test_the_lane_translates_streams_as_the_worker_does(
        lua_url: str, case: str, size: int, include_usage: bool) -> None:
    """Fed in pieces of `size` bytes: split inside lines, CRLFs and UTF-8 sequences."""
    raw = STREAMS[case]
    translator = OpenAIToAnthropic(ClientApi.OPENAI_CHAT, BACKEND)
    translator.request({"messages": [USER], "stream_options": {
        "include_usage": include_usage}}, b"")
    assert translator.response_body_mode(200, {"content-type": "text/event-stream"}) \
        == "streamed"
    pieces = [raw[at:at + size] for at in range(0, len(raw), size)]
    outputs = [translator.response_chunk(piece, at + 1 == len(pieces))
               for at, piece in enumerate(pieces)]
    translated = httpx.post(f"{lua_url}stream/{int(include_usage)}/{size}", content=raw,
                            timeout=5)
    wanted = _events(b"".join(output.body or b"" for output in outputs))
    assert wanted  # every fixture yields events
    assert _events(translated.content) == wanted
    # The stream's final usage, reported once complete (none for a stream cut before it).
    final = [output.usage for output in outputs if output.usage is not None]
    usage = reported_usage(translated)
    assert (usage_from_anthropic(usage) if usage else None) == (final[-1] if final else None)


def test_a_failed_translation_answers_an_openai_error(lua_url: str) -> None:
    """What translated_reply.lua sends, should the translation fail on a reply."""
    body = httpx.post(f"{lua_url}failure", timeout=5).json()
    assert body == {"error": {"message": "the gateway could not translate the provider's answer",
                              "type": "server_error", "code": "bad_gateway"}}
