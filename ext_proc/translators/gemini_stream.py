"""streamGenerateContent?alt=sse (each event a GenerateContentResponse) as Messages events.

Gemini sends no end marker: the answer is finished when a candidate carries a finishReason,
and the usage of the last event is the total. message_stop therefore waits for the end of the
body; a body that ends without a finishReason ends with an error event instead.
"""

from __future__ import annotations

from typing import Any

import orjson

from ext_proc.translators.base import Usage
from ext_proc.translators.common import member
from ext_proc.translators.gemini_schema import call_id, stop_reason, usage_from_gemini
from ext_proc.translators.messages_events import MessageEvents
from ext_proc.translators.sse import SseParser, json_data


class GeminiStream:
    def __init__(self, model: str) -> None:
        self._parser = SseParser()
        self._events = MessageEvents(model)
        self._finish: Any = None
        self._calls = 0
        self._usage = Usage()

    def feed(self, chunk: bytes, end_of_stream: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in self._parser.feed(chunk, end_of_stream):
            data = json_data(event)
            if data is not None and not self._events.ended:
                out.extend(self._response(data))
        if end_of_stream and not self._events.ended:
            out.extend(self._events.finish(stop_reason(self._finish, self._calls > 0),
                                           self._usage) if self._finish else
                       self._events.error("the provider's stream ended before the answer did"))
        return out

    def _response(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        if isinstance(error := data.get("error"), dict):
            return self._events.error(str(error.get("message", "stream error")))
        response_id = str(data.get("responseId") or "")
        out = self._events.start(f"msg_{response_id}" if response_id else "msg_gemini")
        if isinstance(usage := data.get("usageMetadata"), dict):
            self._usage = usage_from_gemini(usage)
        if member(data, "promptFeedback").get("blockReason"):
            self._finish = "SAFETY"
        candidates = data.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if not isinstance(candidate, dict):
            return out
        parts = member(candidate, "content").get("parts")
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict) or part.get("thought") is True:
                continue
            if isinstance(text := part.get("text"), str):
                out.extend(self._events.text("text", text))
            elif isinstance(function := part.get("functionCall"), dict):
                # A call arrives whole: one block with its full input.
                key = ("call", self._calls)
                out.extend(self._events.tool_start(key, call_id(response_id, self._calls),
                                                   str(function.get("name", ""))))
                out.extend(self._events.tool_input(
                    key, orjson.dumps(function.get("args") or {}).decode()))
                out.extend(self._events.close())
                self._calls += 1
        if candidate.get("finishReason"):
            self._finish = candidate["finishReason"]
        return out
