from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ext_proc.contract import ClientApi
from ext_proc.translators.anthropic_openai import AnthropicToOpenAI
from ext_proc.translators.base import Backend, TranslationError
from ext_proc.translators.sse import SseParser
from tests.unit.ext_proc.translators import golden as g

GOLDEN = g.FIXTURES / "golden" / "anthropic_openai"
BACKEND = Backend("llama", "openai", "http://vllm.local:8000/v1", "llama-3.1-8b")


def make() -> AnthropicToOpenAI:
    return AnthropicToOpenAI(ClientApi.ANTHROPIC_MESSAGES, BACKEND)


STREAMS = g.cases("openai", "streams")


@pytest.mark.parametrize("fixture", STREAMS, ids=g.ids(STREAMS))
def test_stream_event_order(fixture: Path) -> None:
    """Anthropic's grammar: message_start, then blocks opened, filled and closed one at a
    time with increasing indexes, then message_delta and message_stop, or an error last."""
    body, _ = g.run_stream(make, [fixture.read_bytes()])
    events = [(e.event, orjson.loads(e.data)) for e in SseParser().feed(body, True)]
    assert events[0][0] in ("message_start", "error")
    open_index, next_index = None, 0
    for name, data in events:
        assert data["type"] == name
        if name == "content_block_start":
            assert open_index is None
            assert data["index"] == next_index
            open_index, next_index = next_index, next_index + 1
        elif name in ("content_block_delta", "content_block_stop"):
            assert data["index"] == open_index
            open_index = None if name == "content_block_stop" else open_index
        elif name in ("message_delta", "message_stop"):
            assert open_index is None
    assert events[-1][0] in ("message_stop", "error")
    if events[-1][0] == "message_stop":
        assert events[-2][0] == "message_delta"


@pytest.mark.parametrize(("body", "expected"), [
    ({"stream": True}, {"stream": True, "stream_options": {"include_usage": True}}),
    ({"system": "Be brief."}, {"messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "hi"}]}),
    ({"tools": [{"name": "f", "input_schema": {"type": "object"}}],
      "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
     {"tool_choice": "auto", "parallel_tool_calls": False}),
    ({"tools": [{"name": "f"}], "tool_choice": {"type": "none"}}, {"tool_choice": "none"}),
])
def test_request_fields(body: dict[str, object], expected: dict[str, object]) -> None:
    request = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
               **body}
    result = make().request(request, b"")
    assert result.body is not None
    sent = orjson.loads(result.body)
    assert {key: sent[key] for key in expected} == expected


@pytest.mark.parametrize("body", [
    {"messages": [{"role": "user", "content": "hi"}]},
    {"max_tokens": 5, "messages": []},
    {"max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
    {"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document"}]}]},
    {"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "content": "no id"}]}]},
    {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
     "tools": [{"name": "f"}], "tool_choice": {"type": "magic"}},
])
def test_request_refused(body: dict[str, object]) -> None:
    with pytest.raises(TranslationError):
        make().request({"model": "m", **body}, b"")


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    """A chat.completion.chunk as OpenAI's API reference ("The chat completion chunk object")
    defines it; the interleaving is what some OpenAI-compatible servers do with parallel calls."""
    return b"data: " + orjson.dumps({
        "id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1741569952,
        "model": "llama-3.1-8b",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"


def _call(index: int, arguments: str, call_id: str | None = None,
          name: str | None = None) -> dict[str, object]:
    function: dict[str, object] = {"arguments": arguments}
    if name:
        function["name"] = name
    return {"tool_calls": [{"index": index, **({"id": call_id} if call_id else {}),
                            "type": "function", "function": function}]}


def _tool_blocks(pieces: list[bytes]) -> list[tuple[str, str, dict[str, object]]]:
    """(id, name, input) of each tool_use block, its input joined from its deltas."""
    body, _ = g.run_stream(make, pieces)
    blocks: dict[int, list[object]] = {}
    for event in SseParser().feed(body, True):
        data = orjson.loads(event.data)
        if data["type"] == "content_block_start" and data["content_block"]["type"] == "tool_use":
            block = data["content_block"]
            blocks[data["index"]] = [block["id"], block["name"], ""]
        elif data["type"] == "content_block_delta" and data["index"] in blocks:
            blocks[data["index"]][2] = str(blocks[data["index"]][2]) + data["delta"]["partial_json"]
    return [(str(i), str(n), orjson.loads(str(a))) for i, n, a in blocks.values()]


def test_interleaved_parallel_tool_calls_become_whole_blocks_one_after_the_other() -> None:
    pieces = [_chunk(_call(0, '{"city"', "call_a", "get_weather")),
              _chunk(_call(1, '{"q": ', "call_b", "search")),
              _chunk(_call(0, ': "Paris"}')),
              _chunk(_call(1, '"news"}')),
              _chunk({}, "tool_calls"), b"data: [DONE]\n\n"]
    assert _tool_blocks(pieces) == [("call_a", "get_weather", {"city": "Paris"}),
                                    ("call_b", "search", {"q": "news"})]
    body, _ = g.run_stream(make, pieces)
    names = [e.event for e in SseParser().feed(body, True)]
    assert names.count("content_block_start") == 2 == names.count("content_block_stop")
    assert names[-2:] == ["message_delta", "message_stop"]


def test_a_new_call_that_reuses_an_index_is_a_block_of_its_own() -> None:
    pieces = [_chunk(_call(0, '{"city": "Paris"}', "call_a", "get_weather")),
              _chunk(_call(0, '{"city": "Oslo"}', "call_b", "get_weather")),
              _chunk({}, "tool_calls"), b"data: [DONE]\n\n"]
    assert _tool_blocks(pieces) == [("call_a", "get_weather", {"city": "Paris"}),
                                    ("call_b", "get_weather", {"city": "Oslo"})]
