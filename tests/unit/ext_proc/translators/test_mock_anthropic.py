"""The mock backend answers Anthropic clients in the Anthropic schema, plain and streamed."""

from __future__ import annotations

import orjson
import pytest

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Backend, LocalReply, TranslationError
from ext_proc.translators.mock import MockBackend
from ext_proc.translators.openai_anthropic_stream import AnthropicToOpenAIStream
from ext_proc.translators.sse import SseParser

BODY = {"model": "mock", "max_tokens": 50,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}]}


def reply(body: dict[str, object]) -> LocalReply:
    return MockBackend(ClientApi.ANTHROPIC_MESSAGES,
                       Backend("mock", "mock", "", "mock")).request(body, b"")


def test_message() -> None:
    answer = reply(BODY)
    message = orjson.loads(answer.body)
    assert answer.headers["content-type"] == "application/json"
    assert message["type"] == "message"
    assert message["content"][0]["text"].endswith("Hello there")
    assert message["stop_reason"] == "end_turn"
    assert message["usage"] == {"input_tokens": 2, "output_tokens": 10}


def test_stream_is_the_same_message() -> None:
    answer = reply({**BODY, "stream": True})
    assert answer.headers["content-type"] == "text/event-stream"
    events = SseParser().feed(answer.body, end_of_stream=True)
    assert [e.event for e in events][:3] == ["message_start", "content_block_start", "ping"]
    assert [e.event for e in events][-3:] == ["content_block_stop", "message_delta",
                                             "message_stop"]
    text = "".join(orjson.loads(e.data)["delta"]["text"] for e in events
                   if e.event == "content_block_delta")
    assert text == orjson.loads(reply(BODY).body)["content"][0]["text"]
    # The OpenAI-side translator reads it as a complete stream.
    out = AnthropicToOpenAIStream("mock", 0, include_usage=False).feed(answer.body, True)
    assert out.body is not None
    assert out.body.endswith(b"data: [DONE]\n\n")


def test_max_tokens_required() -> None:
    with pytest.raises(TranslationError):
        reply({"model": "mock", "messages": [{"role": "user", "content": "hi"}]})
