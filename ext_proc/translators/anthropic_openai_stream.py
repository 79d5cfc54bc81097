"""OpenAI chat.completion.chunk SSE rewritten as Anthropic's Messages SSE.

Anthropic numbers content blocks and opens and closes each one explicitly; OpenAI streams text
and tool-call fragments freely. A new block opens whenever the kind of fragment changes. One
tool call streams at a time: the fragments of any other (a provider may interleave parallel
calls) are kept and sent whole, a block each, when the answer ends, since a closed block cannot
take more input. The usage chunk arrives after the finish_reason, so message_delta and
message_stop wait for [DONE] (or the end of the body); a stream cut before any finish_reason
ends with an error event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ext_proc.translators.base import Translated, Usage
from ext_proc.translators.common import STOP_REASONS, anthropic_usage, member, usage_from_openai
from ext_proc.translators.sse import SseParser, encode, json_data


@dataclass
class _ToolCall:
    """A tool call kept whole while another one streams."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def add(self, call: dict[str, Any]) -> None:
        function = member(call, "function")
        self.id = self.id or str(call.get("id") or "")
        self.name = self.name or str(function.get("name") or "")
        if isinstance(arguments := function.get("arguments"), str):
            self.arguments.append(arguments)


class OpenAIToAnthropicStream:
    def __init__(self, model: str) -> None:
        self._parser = SseParser()
        self._model = model
        self._started = False
        self._ended = False
        self._block = -1  # index of the open Anthropic block, -1 when none is open
        self._open_kind = ""  # "text" or the OpenAI tool-call index as a string
        self._blocks = 0
        self._streaming: tuple[int, str] | None = None  # (index, id) of the tool call that streams
        self._kept: list[tuple[int, _ToolCall]] = []  # the others, in order of appearance
        self._stop_reason: str | None = None
        self._usage: Usage | None = None

    def feed(self, chunk: bytes, end_of_stream: bool) -> Translated:
        out: list[bytes] = []
        usage_seen = False
        for event in self._parser.feed(chunk, end_of_stream):
            if self._ended:
                break
            if event.data.strip() == "[DONE]":
                out.extend(self._finish())
                continue
            data = json_data(event)
            if data is None:
                continue
            if isinstance(data.get("error"), dict):
                out.append(self._error(str(data["error"].get("message", "stream error"))))
                continue
            if isinstance(usage := data.get("usage"), dict):
                self._usage, usage_seen = usage_from_openai(usage), True
            out.extend(self._chunk(data))
        if end_of_stream and not self._ended:
            out.extend(self._finish() if self._stop_reason else
                       [self._error("the provider's stream ended before the answer did")])
        return Translated(b"".join(out), self._usage if usage_seen else None)

    def _chunk(self, data: dict[str, Any]) -> list[bytes]:
        out = self._start(data)
        choices = data.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            return out
        delta = member(choice, "delta")
        if isinstance(text := delta.get("content"), str) and text:
            out.extend(self._open("text", {"type": "text", "text": ""}))
            out.append(self._delta({"type": "text_delta", "text": text}))
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                out.extend(self._tool_call(call))
        if isinstance(reason := choice.get("finish_reason"), str):
            self._stop_reason = STOP_REASONS.get(reason, "end_turn")
            out.extend(self._close_all())
        return out

    def _start(self, data: dict[str, Any]) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        self._model = str(data.get("model") or self._model)
        message: dict[str, Any] = {
            "id": str(data.get("id", "")), "type": "message", "role": "assistant",
            "model": self._model, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": anthropic_usage(Usage())}
        return [encode({"type": "message_start", "message": message}, "message_start")]

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        index, call_id = call.get("index", 0), str(call.get("id") or "")
        index = index if isinstance(index, int) else 0
        streaming = self._streaming
        if streaming is not None and self._open_kind == f"tool:{streaming[0]}" and (
                index != streaming[0] or (call_id and call_id != streaming[1])):
            if index == streaming[0]:  # a new call reusing the index: the last one is done
                return self._stream_tool(index, call_id, call)
            self._keep(index, call_id, call)
            return []
        return self._stream_tool(index, call_id, call)

    def _stream_tool(self, index: int, call_id: str, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        function = member(call, "function")
        kind = f"tool:{index}"
        if call_id or kind != self._open_kind:
            out.extend(self._open(kind, {"type": "tool_use", "id": call_id,
                                         "name": str(function.get("name") or ""), "input": {}},
                                  force=bool(call_id)))
            self._streaming = (index, call_id)
        if isinstance(arguments := function.get("arguments"), str) and arguments:
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return out

    def _keep(self, index: int, call_id: str, call: dict[str, Any]) -> None:
        kept = next((tool for i, tool in reversed(self._kept) if i == index), None)
        if kept is None or (call_id and kept.id and call_id != kept.id):
            kept = _ToolCall()
            self._kept.append((index, kept))
        kept.add(call)

    def _close_all(self) -> list[bytes]:
        """Closes the open block, then sends each kept tool call as a block of its own."""
        out = self._close()
        for index, tool in self._kept:
            out.extend(self._open(f"tool:{index}", {"type": "tool_use", "id": tool.id,
                                                    "name": tool.name, "input": {}}, force=True))
            if arguments := "".join(tool.arguments):
                out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
            out.extend(self._close())
        self._kept, self._streaming = [], None
        return out

    def _open(self, kind: str, block: dict[str, Any], force: bool = False) -> list[bytes]:
        if kind == self._open_kind and not force:
            return []
        out = self._close()
        self._block, self._open_kind = self._blocks, kind
        self._blocks += 1
        out.append(encode({"type": "content_block_start", "index": self._block,
                           "content_block": block}, "content_block_start"))
        return out

    def _close(self) -> list[bytes]:
        if self._block < 0:
            return []
        event = encode({"type": "content_block_stop", "index": self._block},
                       "content_block_stop")
        self._block, self._open_kind = -1, ""
        return [event]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return encode({"type": "content_block_delta", "index": self._block, "delta": delta},
                      "content_block_delta")

    def _finish(self) -> list[bytes]:
        if not self._started:
            return [self._error("the provider's stream carried no answer")]
        self._ended = True
        usage = self._usage or Usage()
        return [*self._close_all(),
                encode({"type": "message_delta",
                        "delta": {"stop_reason": self._stop_reason or "end_turn",
                                  "stop_sequence": None},
                        "usage": anthropic_usage(usage)}, "message_delta"),
                encode({"type": "message_stop"}, "message_stop")]

    def _error(self, message: str) -> bytes:
        self._ended = True
        return encode({"type": "error", "error": {"type": "api_error", "message": message}},
                      "error")
