from __future__ import annotations

import orjson
import pytest

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Backend, TranslationError
from ext_proc.translators.openai_anthropic import OpenAIToAnthropic
from tests.unit.ext_proc.translators import golden as g

GOLDEN = g.FIXTURES / "golden" / "openai_anthropic"
BACKEND = Backend("anthropic", "anthropic", "https://api.anthropic.com", "claude-sonnet-4-5",
                  {"version": "2023-06-01"})


def make() -> OpenAIToAnthropic:
    return OpenAIToAnthropic(ClientApi.OPENAI_CHAT, BACKEND, clock=lambda: 1_700_000_000)


def make_with_usage() -> OpenAIToAnthropic:
    translator = make()
    translator.request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                        "stream": True, "stream_options": {"include_usage": True}}, b"")
    return translator


def test_stream_usage_chunk_when_asked() -> None:
    body, usage = g.run_stream(make_with_usage, [(g.FIXTURES / "anthropic/streams/text.sse")
                                                 .read_bytes()])
    events = [line for line in body.decode().split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    last = orjson.loads(events[-2].removeprefix("data: "))
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": 1049, "completion_tokens": 15,
                             "total_tokens": 1064, "prompt_tokens_details":
                                 {"cached_tokens": 1024}}
    assert usage is not None
    assert usage.output_tokens == 15


@pytest.mark.parametrize(("body", "expected"), [
    ({}, {"max_tokens": 4096}),
    ({"max_tokens": 10}, {"max_tokens": 10}),
    ({"stop": ["a", "b"]}, {"stop_sequences": ["a", "b"]}),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"},
     {"tool_choice": {"type": "none"}}),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto",
      "parallel_tool_calls": False},
     {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}}),
])
def test_request_fields(body: dict[str, object], expected: dict[str, object]) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    result = make().request(request, b"")
    assert result.body is not None
    sent = orjson.loads(result.body)
    assert {key: sent[key] for key in expected} == expected


@pytest.mark.parametrize("body", [
    {"messages": []},
    {"messages": [{"role": "user", "content": "hi"}], "n": 2},
    {"messages": [{"role": "function", "content": "x"}]},
    {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url",
                                                "image_url": {"url": "ftp://x"}}]}]},
    {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "function": {"name": "f", "arguments": "{not json"}}]}]},
    {"messages": [{"role": "tool", "content": "x"}]},
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
    {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"},
])
def test_request_refused(body: dict[str, object]) -> None:
    with pytest.raises(TranslationError):
        make().request({"model": "m", **body}, b"")
