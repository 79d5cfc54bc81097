"""Envoy's reading of a forwarded stream's usage (control_plane/compiler/lua/sse_usage.lua),
run in a real Envoy's LuaJIT: it reports what the workers' own stream readers report
(ext_proc/translators/openai_openai.py, anthropic_anthropic.py) for the recorded fixture
streams (tests/fixtures/*/streams, whose README cites the providers' references) and for
streams written otherwise as the SSE specification allows, fed in pieces of any size; and
the usage event the lane asked for on a client's behalf leaves the stream, byte for byte
(a stream whose lines end otherwise than with LF leaves with LF line ends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ext_proc.contract import REPLY_FINAL_FIELDS, ClientApi
from ext_proc.direct import USAGE_READERS
from ext_proc.translators.anthropic_anthropic import AnthropicToAnthropic
from ext_proc.translators.base import Backend, Usage
from ext_proc.translators.openai_openai import OpenAIToOpenAI
from tests.support.lua_envoy import lua_envoy, reported_usage, stream_usage_harness

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SIZES = (1, 7, 64, 100_000)


@pytest.fixture(scope="module")
def lua_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with lua_envoy(stream_usage_harness(), tmp_path_factory.mktemp("stream-usage")) as url:
        yield url


def _read(url: str, stream: bytes, size: int) -> dict[str, Any] | None:
    response = httpx.post(f"{url}read/{size}", content=stream, timeout=5)
    assert response.status_code == 200
    return reported_usage(response)


def _workers_usage(api: ClientApi, stream: bytes) -> Usage | None:
    """The final usage a worker's translator of the same schema reads from the stream."""
    backend = Backend("p", api.value, "https://example.com", "m")
    translator = (OpenAIToOpenAI(api, backend) if api is ClientApi.OPENAI_CHAT
                  else AnthropicToAnthropic(api, backend))
    return translator.response_chunk(stream, True).usage


FIXTURE_STREAMS = {f"{api.name.lower()} {path.stem}": (api, path.read_bytes())
                   for api, provider in ((ClientApi.OPENAI_CHAT, "openai"),
                                         (ClientApi.ANTHROPIC_MESSAGES, "anthropic"))
                   for path in sorted((FIXTURES / provider / "streams").iterdir())}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", FIXTURE_STREAMS)
def test_a_fixture_streams_usage_is_what_a_worker_reads(lua_url: str, case: str,
                                                        size: int) -> None:
    api, stream = FIXTURE_STREAMS[case]
    reported = _read(lua_url, stream, size) or {}
    expected = _workers_usage(api, stream)
    final = [name for name in REPLY_FINAL_FIELDS if name in reported]
    if expected is None:  # cut before its final usage, or an error: estimated by the worker
        assert not final, f"{case}: {reported}"
    else:
        assert final, f"{case}: {reported}"
        assert USAGE_READERS[api](reported) == expected


def test_the_fixtures_hold_what_the_cases_below_assume() -> None:
    """Each kind of stream is among the fixtures: a whole one of each schema, and a cut one."""
    assert _workers_usage(*FIXTURE_STREAMS["openai_chat text"]) is not None
    assert _workers_usage(*FIXTURE_STREAMS["anthropic_messages text"]) is not None
    assert _workers_usage(*FIXTURE_STREAMS["anthropic_messages truncated"]) is None


def _event(data: Any, name: str = "") -> str:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {orjson.dumps(data).decode()}\n\n"


def _chunk(content: str) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "usage": None,
            "choices": [{"index": 0, "delta": {"content": content}}]}


OPENAI_USAGE = {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35,
                "prompt_tokens_details": {"cached_tokens": 10},
                "completion_tokens_details": {"reasoning_tokens": 2}}
OPENAI_FIELDS = {"prompt_tokens": 30, "completion_tokens": 5,
                 "prompt_tokens_details": {"cached_tokens": 10},
                 "completion_tokens_details": {"reasoning_tokens": 2}}
USAGE_EVENT = _event({"object": "chat.completion.chunk", "choices": [], "usage": OPENAI_USAGE})
DONE = "data: [DONE]\n\n"
START = {"type": "message_start", "message": {"content": [], "usage": {
    "input_tokens": 25, "cache_read_input_tokens": 1024, "cache_creation_input_tokens": 0,
    "output_tokens": 1}}}
DELTA = {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 15}}

# What a stream written so reports: its usage object's fields as the reply wrote them.
EDGE_STREAMS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "openai": (_event(_chunk("Hi")) + USAGE_EVENT + DONE, OPENAI_FIELDS),
    "CRLF line ends": ((_event(_chunk("Hi")) + USAGE_EVENT + DONE).replace("\n", "\r\n"),
                       OPENAI_FIELDS),
    "mixed line ends": (_event(_chunk("Hi")).replace("\n\n", "\r\n\n")
                        + USAGE_EVENT.replace("\n\n", "\n\r\n") + DONE, OPENAI_FIELDS),
    "CR line ends": ((_event(_chunk("Hi")) + USAGE_EVENT + DONE).replace("\n", "\r"),
                     OPENAI_FIELDS),
    "CR, LF and CRLF line ends": (
        ": x\r\r" + _event(_chunk("Hi")).replace("\n\n", "\r\n\r")
        + "data:" + USAGE_EVENT.removeprefix("data: ").replace("\n\n", "\r\r\n")
        + DONE.replace("\n", "\r"), OPENAI_FIELDS),
    "data without a space, spaces in the JSON": (
        "data:" + orjson.dumps(_chunk("a")).decode() + "\n\n"
        + 'data:{"choices" : [] , "usage" :\t{ "prompt_tokens" : 3 , "completion_tokens":'
          ' 4 }}\n\n', {"prompt_tokens": 3, "completion_tokens": 4}),
    "comments, ids and a data line split in two": (
        ": keep-alive\n\nid: 7\ndata: {\"choices\": [],\ndata: \"usage\": {\"prompt_tokens\":"
        " 3, \"completion_tokens\": 4}}\n\n", {"prompt_tokens": 3, "completion_tokens": 4}),
    "usage written in the text is not the usage": (
        _event(_chunk('the reply said "usage": {"prompt_tokens": 9}')) + DONE, None),
    "a usage key nested elsewhere is not the usage": (
        _event({"choices": [], "meta": {"usage": {"prompt_tokens": 9}}}) + DONE, None),
    "anthropic: the start's input, the delta's output": (
        _event(START, "message_start") + _event(DELTA, "message_delta")
        + _event({"type": "message_stop"}, "message_stop"),
        {"input_tokens": 25, "cache_read_input_tokens": 1024,
         "cache_creation_input_tokens": 0, "output_tokens": 15}),
    "anthropic cut after its start: no output count": (
        _event(START, "message_start") + _event(
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}},
            "content_block_delta"),
        {"input_tokens": 25, "cache_read_input_tokens": 1024,
         "cache_creation_input_tokens": 0}),
    "the last event naming a field wins": (
        USAGE_EVENT + _event({"choices": [], "usage": {"completion_tokens": 6}}),
        {**OPENAI_FIELDS, "completion_tokens": 6}),
    "an event that is not JSON is passed over": (
        'data: {"usage": {"prompt_tokens": 1}\n\n' + USAGE_EVENT, OPENAI_FIELDS),
    "an event the stream does not end is not read (as SSE discards it)": (
        _event(_chunk("a")) + USAGE_EVENT.rstrip("\n"), None),
    "no usage at all": (_event(_chunk("a")) + DONE, None),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", EDGE_STREAMS)
def test_a_streams_usage_is_read_however_it_is_written_and_split(lua_url: str, case: str,
                                                                 size: int) -> None:
    stream, expected = EDGE_STREAMS[case]
    assert _read(lua_url, stream.encode(), size) == expected


def _strip(url: str, stream: bytes, size: int) -> httpx.Response:
    response = httpx.post(f"{url}strip/{size}", content=stream, timeout=5)
    assert response.status_code == 200
    return response


STRIPPED: dict[str, tuple[bytes, bytes]] = {
    "the fixture": (
        (FIXTURES / "openai" / "streams" / "text.sse").read_bytes(),
        b"".join(event + b"\n\n" for event in (FIXTURES / "openai" / "streams" / "text.sse")
                 .read_bytes().split(b"\n\n") if event and b'"choices":[],' not in event)),
    # Lines that end otherwise than with LF leave with LF (the same events).
    "CRLF": ((_event(_chunk("a")) + USAGE_EVENT + DONE).replace("\n", "\r\n").encode(),
             (_event(_chunk("a")) + DONE).encode()),
    "CR": ((_event(_chunk("a")) + USAGE_EVENT + DONE).replace("\n", "\r").encode(),
           (_event(_chunk("a")) + DONE).encode()),
    "usage riding on a chunk with choices stays": (
        (_event({**_chunk("a"), "usage": OPENAI_USAGE}) + DONE).encode(),
        (_event({**_chunk("a"), "usage": OPENAI_USAGE}) + DONE).encode()),
    "no usage event": ((_event(_chunk("a")) + DONE).encode(),
                       (_event(_chunk("a")) + DONE).encode()),
    "a stream that ends inside an event keeps its end": (
        (_event(_chunk("a")) + USAGE_EVENT + 'data: {"choices": [').encode(),
        (_event(_chunk("a")) + 'data: {"choices": [').encode()),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", STRIPPED)
def test_the_added_usage_event_leaves_the_stream_and_nothing_else(lua_url: str, case: str,
                                                                   size: int) -> None:
    stream, expected = STRIPPED[case]
    assert expected != stream or case in ("usage riding on a chunk with choices stays",
                                          "no usage event")
    stripped = _strip(lua_url, stream, size)
    assert stripped.content == expected
    # The stripper reads the usage itself (the usage reader skips these streams).
    assert reported_usage(stripped) == _read(lua_url, stream, size)
    assert (reported_usage(stripped) is None) == (case == "no usage event")


def _whole(url: str, reply: bytes) -> dict[str, Any] | None:
    response = httpx.post(f"{url}whole/0", content=reply, timeout=5)
    assert response.status_code == 200
    return reported_usage(response)


FIXTURE_REPLIES = {f"{api.name.lower()} {path.stem}": (api, path.read_bytes())
                   for api, provider in ((ClientApi.OPENAI_CHAT, "openai"),
                                         (ClientApi.ANTHROPIC_MESSAGES, "anthropic"))
                   for path in sorted((FIXTURES / provider / "responses").iterdir())}


@pytest.mark.parametrize("case", FIXTURE_REPLIES)
def test_a_fixture_replys_usage_is_what_a_worker_reads(lua_url: str, case: str) -> None:
    api, reply = FIXTURE_REPLIES[case]
    backend = Backend("p", api.value, "https://example.com", "m")
    translator = (OpenAIToOpenAI(api, backend) if api is ClientApi.OPENAI_CHAT
                  else AnthropicToAnthropic(api, backend))
    expected = translator.response_body(reply).usage
    assert expected is not None
    assert USAGE_READERS[api](_whole(lua_url, reply) or {}) == expected


# What a whole reply written so reports: its top-level usage object's fields.
EDGE_REPLIES: dict[str, tuple[str, dict[str, Any] | None]] = {
    "usage last": (orjson.dumps({"id": "x", "choices": [], "usage": OPENAI_USAGE}).decode(),
                   OPENAI_FIELDS),
    "usage first, spaces and line ends": (
        '{ "usage" :\n { "prompt_tokens" : 3 , "completion_tokens" : 4 } ,\r\n "id" : "x" ,'
        ' "n" : [1, {"a": "}"}] }\n', {"prompt_tokens": 3, "completion_tokens": 4}),
    "a usage key nested before the top-level one": (
        orjson.dumps({"x_meta": {"usage": {"prompt_tokens": 9}},
                      "usage": {"prompt_tokens": 1}, "z": True}).decode(),
        {"prompt_tokens": 1}),
    "a usage key nested after the top-level one": (
        orjson.dumps({"usage": {"prompt_tokens": 1},
                      "x_meta": {"usage": {"prompt_tokens": 9}}}).decode(),
        {"prompt_tokens": 1}),
    "only a nested usage key": (
        orjson.dumps({"choices": [{"usage": {"prompt_tokens": 9}}]}).decode(), None),
    "usage written in the text is not the usage": (
        orjson.dumps({"choices": [{"message": {
            "content": 'it said "usage": {"prompt_tokens": 9}}'}}]}).decode(), None),
    "a key ending in an escaped quote and usage is not the usage": (
        '{"say \\"usage": {"prompt_tokens": 9}}', None),
    "a usage that is not an object": ('{"usage": null, "id": "x"}', None),
    "not JSON": ('{"usage": {"prompt_tokens": 1}', None),
    "not an object": ('[{"usage": {"prompt_tokens": 1}}]', None),
}


@pytest.mark.parametrize("case", EDGE_REPLIES)
def test_a_whole_reply_reports_its_top_level_usage(lua_url: str, case: str) -> None:
    reply, expected = EDGE_REPLIES[case]
    assert _whole(lua_url, reply.encode()) == expected
