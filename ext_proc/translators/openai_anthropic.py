"""OpenAI chat completions clients served by Anthropic's Messages API."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

import orjson

from ext_proc.contract import ClientApi
from ext_proc.translators.base import Backend, BodyMode, Translated, UpstreamRequest
from ext_proc.translators.common import (
    DEFAULT_ANTHROPIC_VERSION,
    FINISH_REASONS,
    error_message,
    is_event_stream,
    is_success,
    openai_error,
    openai_usage,
    usage_from_anthropic,
)
from ext_proc.translators.openai_anthropic_request import to_anthropic
from ext_proc.translators.openai_anthropic_stream import AnthropicToOpenAIStream
from ext_proc.translators.paths import join_path


def anthropic_headers(backend: Backend) -> dict[str, str]:
    return {"anthropic-version": backend.options.get("version", DEFAULT_ANTHROPIC_VERSION)}


class OpenAIToAnthropic:
    def __init__(self, api: ClientApi, backend: Backend,
                 clock: Callable[[], float] = time.time) -> None:
        self._backend = backend
        self._created = int(clock())
        self._include_usage = False
        self._status = 0
        self._stream: AnthropicToOpenAIStream | None = None

    # Envoy's lane translates the requests it knows all of itself, whole or streamed
    # (TranslatedInEnvoy); the others are ours.
    envoy_translation: ClassVar[str] = "openai_anthropic"
    reply_api: ClassVar[ClientApi] = ClientApi.ANTHROPIC_MESSAGES

    def envoy_upstream(self) -> UpstreamRequest:
        return UpstreamRequest(join_path(self._backend.base_url, "/v1/messages"), None,
                               anthropic_headers(self._backend))

    def request(self, body: dict[str, Any], raw: bytes) -> UpstreamRequest:
        translated = to_anthropic(body, self._backend.model)
        options = body.get("stream_options")
        self._include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return replace(self.envoy_upstream(), body=orjson.dumps(translated))

    def response_body_mode(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        self._status = status
        if is_success(status) and is_event_stream(headers):
            self._stream = AnthropicToOpenAIStream(self._backend.model, self._created,
                                                   self._include_usage)
            return "streamed"
        return "buffered"

    def response_body(self, body: bytes) -> Translated:
        if not is_success(self._status):
            return Translated(openai_error(self._status, error_message(body)))
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict):
            return Translated(openai_error(502, "the provider returned an unreadable answer"))
        return openai_completion(message, self._backend.model, self._created)

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> Translated:
        if self._stream is None:
            return Translated(None)
        return self._stream.feed(chunk, end_of_stream)


def openai_completion(message: dict[str, Any], model: str, created: int) -> Translated:
    """An Anthropic message as an OpenAI chat.completion, with the usage it reports."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    blocks = message.get("content")
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            text.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append({"id": str(block.get("id", "")), "type": "function", "function": {
                "name": str(block.get("name", "")),
                "arguments": orjson.dumps(block.get("input", {})).decode()}})
    reply: dict[str, Any] = {"role": "assistant",
                             "content": "".join(text) if text else None, "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    raw_usage = message.get("usage")
    usage = usage_from_anthropic(raw_usage) if isinstance(raw_usage, dict) else None
    completion = {
        "id": str(message.get("id", "")), "object": "chat.completion",
        "created": created, "model": str(message.get("model") or model),
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": FINISH_REASONS.get(str(message.get("stop_reason")),
                                                         "stop")}],
    }
    if usage is not None:
        completion["usage"] = openai_usage(usage)
    return Translated(orjson.dumps(completion), usage)
