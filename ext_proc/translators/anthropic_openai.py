"""Anthropic Messages clients served by an OpenAI-compatible chat completions backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from ext_proc.contract import ClientApi
from ext_proc.translators.anthropic_openai_request import to_openai
from ext_proc.translators.anthropic_openai_stream import OpenAIToAnthropicStream
from ext_proc.translators.base import Backend, BodyMode, Translated, UpstreamRequest
from ext_proc.translators.common import (
    STOP_REASONS,
    anthropic_error,
    anthropic_usage,
    error_message,
    is_event_stream,
    is_success,
    member,
    usage_from_openai,
)
from ext_proc.translators.paths import join_path


class AnthropicToOpenAI:
    def __init__(self, api: ClientApi, backend: Backend, path: str | None = None) -> None:
        self._backend = backend
        self._path = path or join_path(backend.base_url, "/chat/completions")
        self._status = 0
        self._stream: OpenAIToAnthropicStream | None = None

    # Envoy's lane translates the requests it knows all of itself, whole or streamed
    # (TranslatedInEnvoy); the others are ours.
    envoy_translation: ClassVar[str] = "anthropic_openai"
    reply_api: ClassVar[ClientApi] = ClientApi.OPENAI_CHAT

    def envoy_upstream(self) -> UpstreamRequest:
        return UpstreamRequest(self._path, None)

    def request(self, body: dict[str, Any], raw: bytes) -> UpstreamRequest:
        translated = to_openai(body, self._backend.model)
        return UpstreamRequest(self._path, orjson.dumps(translated))

    def response_body_mode(self, status: int, headers: Mapping[str, str]) -> BodyMode:
        self._status = status
        if is_success(status) and is_event_stream(headers):
            self._stream = OpenAIToAnthropicStream(self._backend.model)
            return "streamed"
        return "buffered"

    def response_body(self, body: bytes) -> Translated:
        if not is_success(self._status):
            return Translated(anthropic_error(self._status, error_message(body)))
        try:
            completion = orjson.loads(body)
        except orjson.JSONDecodeError:
            completion = None
        choices = completion.get("choices") if isinstance(completion, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return Translated(anthropic_error(502, "the provider returned an unreadable answer"))
        assert isinstance(completion, dict)
        return self._message(completion, choices[0])

    def response_chunk(self, chunk: bytes, end_of_stream: bool) -> Translated:
        if self._stream is None:
            return Translated(None)
        return self._stream.feed(chunk, end_of_stream)

    def _message(self, completion: dict[str, Any], choice: dict[str, Any]) -> Translated:
        reply = member(choice, "message")
        content: list[dict[str, Any]] = []
        if isinstance(text := reply.get("content"), str) and text:
            content.append({"type": "text", "text": text})
        for call in reply.get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(function := call.get("function"), dict):
                content.append({"type": "tool_use", "id": str(call.get("id", "")),
                                "name": str(function.get("name", "")),
                                "input": _arguments(function.get("arguments"))})
        raw_usage = completion.get("usage")
        usage = usage_from_openai(raw_usage) if isinstance(raw_usage, dict) else None
        message = {
            "id": str(completion.get("id", "")), "type": "message", "role": "assistant",
            "model": str(completion.get("model") or self._backend.model), "content": content,
            "stop_reason": STOP_REASONS.get(str(choice.get("finish_reason")), "end_turn"),
            "stop_sequence": None,
            "usage": anthropic_usage(usage) if usage else {"input_tokens": 0,
                                                           "output_tokens": 0},
        }
        return Translated(orjson.dumps(message), usage)


def _arguments(arguments: Any) -> Any:
    """Tool input as an object; a model's malformed JSON is kept under a key, not dropped."""
    if not isinstance(arguments, str) or not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}
