"""The mock backend: a deterministic reply in the caller's schema (OpenAI or Anthropic).

The reply depends only on the request, so tests and demos can assert on it; the usage block
counts words, a stable stand-in for tokens.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from ext_proc.contract import ClientApi
from ext_proc.translators.base import (
    Backend,
    BodyMode,
    LocalReply,
    Translated,
    TranslationError,
    Usage,
)
from ext_proc.translators.common import usage_from_anthropic, usage_from_openai

JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream", "cache-control": "no-cache"}


class MockBackend:
    def __init__(self, api: ClientApi, backend: Backend) -> None:
        self._api = api
        self._model = backend.model

    def request(self, body: dict[str, Any], raw: bytes) -> LocalReply:
        if self._api is ClientApi.OPENAI_EMBEDDINGS:
            return _embeddings(body, self._model)
        if self._api is ClientApi.OPENAI_CHAT:
            return _chat(body, self._model)
        return _messages(body, self._model)

    def response_body_mode(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        return "none"

    def response_body(self, body: bytes) -> Translated:
        return Translated(None)

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> Translated:
        return Translated(None)


def mock_text(messages: list[Any]) -> tuple[str, int]:
    """The reply and the number of input words for a list of chat messages."""
    words = 0
    last_user = ""
    for message in messages:
        if not isinstance(message, dict):
            raise TranslationError("each message must be an object")
        text = _text_of(message.get("content"))
        words += len(text.split())
        if message.get("role") == "user":
            last_user = text
    echo = " ".join(last_user.split()[:12])
    return f"This is a mock reply from Switchboard to: {echo}", words


def _chat(body: dict[str, Any], model: str) -> LocalReply:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("'messages' must be a non-empty list")
    reply, input_words = mock_text(messages)
    usage = {"prompt_tokens": input_words, "completion_tokens": len(reply.split()),
             "total_tokens": input_words + len(reply.split())}
    completion_id = "chatcmpl-mock-" + hashlib.sha256(orjson.dumps(messages)).hexdigest()[:24]
    created = int(time.time())
    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = _chat_chunks(completion_id, created, model, reply, usage, include_usage)
        return LocalReply(200, b"".join(events), SSE, usage_from_openai(usage))
    return LocalReply(200, orjson.dumps({
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage,
    }), JSON, usage_from_openai(usage))


def _chat_chunks(completion_id: str, created: int, model: str, reply: str,
                 usage: dict[str, int], include_usage: bool) -> Iterator[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        event = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                 "model": model, "choices": choices, **extra}
        return b"data: " + orjson.dumps(event) + b"\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    for index, word in enumerate(reply.split(" ")):
        yield chunk({"content": word if index == 0 else " " + word}, None)
    yield chunk({}, "stop")
    if include_usage:
        event = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                 "model": model, "choices": [], "usage": usage}
        yield b"data: " + orjson.dumps(event) + b"\n\n"
    yield b"data: [DONE]\n\n"


def _messages(body: dict[str, Any], model: str) -> LocalReply:
    """Anthropic's Messages schema: the same reply as _chat, as a message or its events."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("'messages' must be a non-empty list")
    if not isinstance(body.get("max_tokens"), int):
        raise TranslationError("'max_tokens' is required")
    reply, input_words = mock_text(messages)
    usage = {"input_tokens": input_words, "output_tokens": len(reply.split())}
    message = {"id": "msg_mock_" + hashlib.sha256(orjson.dumps(messages)).hexdigest()[:24],
               "type": "message", "role": "assistant", "model": model,
               "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
               "stop_sequence": None, "usage": usage}
    counted = usage_from_anthropic(usage)
    if body.get("stream") is not True:
        return LocalReply(200, orjson.dumps(message), JSON, counted)
    return LocalReply(200, b"".join(_message_events(message, reply, usage)), SSE, counted)


def _message_events(message: dict[str, Any], reply: str,
                    usage: dict[str, int]) -> Iterator[bytes]:
    def event(data: dict[str, Any]) -> bytes:
        return f"event: {data['type']}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"

    start = {**message, "content": [], "stop_reason": None,
             "usage": {**usage, "output_tokens": 1}}
    yield event({"type": "message_start", "message": start})
    yield event({"type": "content_block_start", "index": 0,
                 "content_block": {"type": "text", "text": ""}})
    yield event({"type": "ping"})
    for index, word in enumerate(reply.split(" ")):
        yield event({"type": "content_block_delta", "index": 0, "delta": {
            "type": "text_delta", "text": word if index == 0 else " " + word}})
    yield event({"type": "content_block_stop", "index": 0})
    yield event({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                    "stop_sequence": None},
                 "usage": {"output_tokens": usage["output_tokens"]}})
    yield event({"type": "message_stop"})


def _embeddings(body: dict[str, Any], model: str) -> LocalReply:
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise TranslationError("'input' must be a string or a non-empty list of strings")
    dimensions = body.get("dimensions", 8)
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        raise TranslationError("'dimensions' must be an integer from 1 to 4096")
    data = [{"object": "embedding", "index": i, "embedding": _vector(text, dimensions)}
            for i, text in enumerate(inputs)]
    tokens = sum(len(text.split()) for text in inputs)
    return LocalReply(200, orjson.dumps({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }), JSON, Usage(input_tokens=tokens))


def _vector(text: str, dimensions: int) -> list[float]:
    """A unit-free, deterministic vector derived from the text's hash."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(v / 2**31 - 1 for v in struct.unpack(">8I", digest))
        counter += 1
    return [round(v, 6) for v in values[:dimensions]]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content
                        if isinstance(part, dict) and isinstance(part.get("text"), str))
    return ""
