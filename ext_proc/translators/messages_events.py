"""Building Messages replies and stream events from another backend's answer.

Anthropic's stream opens, numbers and closes every content block; backends that stream in
another shape feed their pieces here (keyed by their own block identity) and get well-formed
events back, including the rule that message_stop is sent only for a finished answer.
"""

from __future__ import annotations

from typing import Any

from ext_proc.translators.base import Usage
from ext_proc.translators.common import anthropic_usage


def message_reply(message_id: str, model: str, content: list[dict[str, Any]],
                  stop_reason: str, usage: Usage) -> dict[str, Any]:
    return {"id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": anthropic_usage(usage)}


class MessageEvents:
    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self.ended = False
        self._open: object = None  # the backend's key of the open block
        self._index = -1
        self._blocks = 0

    def start(self, message_id: str = "", usage: Usage | None = None) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        return [{"type": "message_start", "message": {
            **message_reply(message_id, self._model, [], "", usage or Usage()),
            "stop_reason": None}}]

    def text(self, key: object, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        out = self._block(key, {"type": "text", "text": ""})
        out.append(self._delta({"type": "text_delta", "text": text}))
        return out

    def tool_start(self, key: object, call_id: str, name: str) -> list[dict[str, Any]]:
        return self._block(key, {"type": "tool_use", "id": call_id, "name": name, "input": {}},
                           force=True)

    def tool_input(self, key: object, partial_json: str) -> list[dict[str, Any]]:
        if key != self._open or not partial_json:
            return []  # input for a block that never started: nothing to attach it to
        return [self._delta({"type": "input_json_delta", "partial_json": partial_json})]

    def close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._index}]

    def finish(self, stop_reason: str, usage: Usage) -> list[dict[str, Any]]:
        if self.ended:
            return []
        out = [*self.start(), *self.close(),
               {"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": anthropic_usage(usage)},
               {"type": "message_stop"}]
        self.ended = True
        return out

    def error(self, message: str, kind: str = "api_error") -> list[dict[str, Any]]:
        if self.ended:
            return []
        self.ended = True
        return [{"type": "error", "error": {"type": kind, "message": message}}]

    def _block(self, key: object, block: dict[str, Any],
               force: bool = False) -> list[dict[str, Any]]:
        out = self.start()
        if key == self._open and not force:
            return out
        out.extend(self.close())
        self._open, self._index = key, self._blocks
        self._blocks += 1
        out.append({"type": "content_block_start", "index": self._index,
                    "content_block": block})
        return out

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": self._index, "delta": delta}
