"""Anthropic's Messages SSE rewritten as OpenAI chat.completion.chunk SSE.

The OpenAI stream ends with `data: [DONE]` only when Anthropic's message_stop was seen, so a
client can tell a complete answer from a cut one; an upstream `error` event becomes an
OpenAI-style error chunk and the stream ends without [DONE].
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ext_proc.translators.base import Translated, Usage
from ext_proc.translators.common import (
    FINISH_REASONS,
    member,
    openai_usage,
    usage_from_anthropic,
)
from ext_proc.translators.sse import SseParser, encode, json_data


class AnthropicUsageTracker:
    """message_start carries the input counts; message_delta carries cumulative updates.

    Only message_delta completes the usage: message_start's output count is a placeholder
    (Anthropic sends 1; backends translated into Messages events know nothing yet and send
    0). So the usage is reported once message_delta arrives, and a stream cut before it
    reports none, which the metering layer then estimates instead of taking the placeholder
    for the answer's real size.
    """

    def __init__(self) -> None:
        self._start: Usage | None = None
        self.usage: Usage | None = None

    def see(self, data: dict[str, Any]) -> bool:
        """Record the usage an event carries; True when it completed the usage."""
        kind = data.get("type")
        message = data.get("message")
        if kind == "message_start" and isinstance(message, dict):
            usage = message.get("usage")
            if isinstance(usage, dict):
                self._start = usage_from_anthropic(usage)
        elif kind == "message_delta" and isinstance(usage := data.get("usage"), dict):
            seen = usage_from_anthropic(usage)
            base = self.usage or self._start or Usage()
            # Only the fields present in this event replace earlier values.
            self.usage = replace(base, **{
                name: getattr(seen, name) for name, key in _USAGE_KEYS.items() if key in usage})
            return True
        return False


_USAGE_KEYS = {"input_tokens": "input_tokens", "output_tokens": "output_tokens",
               "cached_input_tokens": "cache_read_input_tokens",
               "cache_creation_tokens": "cache_creation_input_tokens"}


class AnthropicToOpenAIStream:
    def __init__(self, model: str, created: int, include_usage: bool) -> None:
        self._parser = SseParser()
        self._usage = AnthropicUsageTracker()
        self._id = ""
        self._model = model
        self._created = created
        self._include_usage = include_usage
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index
        self._finished = False

    def feed(self, chunk: bytes, end_of_stream: bool) -> Translated:
        events = self._parser.feed(chunk, end_of_stream)
        return self.feed_events([{"type": event.event, **data} for event in events
                                 if (data := json_data(event)) is not None])

    def feed_events(self, events: Iterable[dict[str, Any]]) -> Translated:
        """Anthropic events already parsed (or produced by another backend's stream)."""
        out: list[bytes] = []
        usage_seen = False
        for data in events:
            if self._finished:
                continue
            usage_seen |= self._usage.see(data)
            out.extend(self._translate(data))
        return Translated(b"".join(out), self._usage.usage if usage_seen else None)

    def _translate(self, data: dict[str, Any]) -> list[bytes]:
        kind = data.get("type")
        if kind == "message_start":
            message = member(data, "message")
            self._id = str(message.get("id", ""))
            self._model = str(message.get("model") or self._model)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "content_block_delta":
            return self._block_delta(data)
        if kind == "message_delta":
            delta = member(data, "delta")
            reason = FINISH_REASONS.get(str(delta.get("stop_reason")), "stop")
            return [self._chunk({}, reason)]
        if kind == "message_stop":
            self._finished = True
            tail = [self._envelope([], usage=openai_usage(self._usage.usage or Usage()))
                    ] if self._include_usage else []
            return [*tail, b"data: [DONE]\n\n"]
        if kind == "error":
            self._finished = True
            error = member(data, "error")
            return [encode({"error": {"message": str(error.get("message", "stream error")),
                                      "type": str(error.get("type", "api_error")),
                                      "code": None}})]
        return []  # ping, content_block_stop and future event types carry nothing for OpenAI

    def _block_start(self, data: dict[str, Any]) -> list[bytes]:
        block = data.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "tool_use":
            tool = self._tool_index[_index(data)] = len(self._tool_index)
            return [self._chunk({"tool_calls": [{
                "index": tool, "id": str(block.get("id", "")), "type": "function",
                "function": {"name": str(block.get("name", "")), "arguments": ""}}]})]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": str(block["text"])})]
        return []

    def _block_delta(self, data: dict[str, Any]) -> list[bytes]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        if delta.get("type") == "text_delta":
            return [self._chunk({"content": str(delta.get("text", ""))})]
        arguments = delta.get("partial_json")
        if (delta.get("type") == "input_json_delta" and _index(data) in self._tool_index
                and isinstance(arguments, str) and arguments):
            return [self._chunk({"tool_calls": [{
                "index": self._tool_index[_index(data)], "function": {"arguments": arguments}}]})]
        return []  # thinking and signature deltas have no place in a chat completion

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._envelope([{"index": 0, "delta": delta, "logprobs": None,
                                "finish_reason": finish}])

    def _envelope(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return encode({"id": self._id, "object": "chat.completion.chunk",
                       "created": self._created, "model": self._model,
                       "choices": choices, **extra})


def _index(data: dict[str, Any]) -> int:
    index = data.get("index")
    return index if isinstance(index, int) else -1
