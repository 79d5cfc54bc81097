"""Gemini's generateContent as a Messages-shaped backend (see via_messages.py), for both the
Gemini API (API key) and Vertex AI (service-account tokens): the bodies are the same, only the
paths differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ext_proc.translators.base import Backend, UpstreamRequest
from ext_proc.translators.common import error_message, is_event_stream, member
from ext_proc.translators.gemini_request import to_gemini
from ext_proc.translators.gemini_schema import (
    call_id,
    model_path,
    stop_reason,
    usage_from_gemini,
)
from ext_proc.translators.gemini_stream import GeminiStream
from ext_proc.translators.messages_events import message_reply


class GeminiGenerate:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def request(self, messages: dict[str, Any]) -> UpstreamRequest:
        method = ("streamGenerateContent?alt=sse" if messages.get("stream") is True
                  else "generateContent")
        return UpstreamRequest(model_path(self._backend, method),
                               orjson.dumps(to_gemini(messages)))

    def is_stream(self, headers: Mapping[str, str]) -> bool:
        return is_event_stream(headers)

    def stream(self) -> GeminiStream:
        return GeminiStream(self._backend.model)

    def message(self, reply: dict[str, Any]) -> dict[str, Any] | None:
        candidates = reply.get("candidates")
        if candidates is None and member(reply, "promptFeedback").get("blockReason"):
            candidates = [{"finishReason": "SAFETY"}]  # the prompt itself was blocked
        if not isinstance(candidates, list) or not candidates:
            return None
        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        response_id = str(reply.get("responseId") or "")
        content: list[dict[str, Any]] = []
        calls = 0
        parts = member(candidate, "content").get("parts")
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict) or part.get("thought") is True:
                continue
            if isinstance(text := part.get("text"), str):
                content.append({"type": "text", "text": text})
            elif isinstance(function := part.get("functionCall"), dict):
                content.append({"type": "tool_use", "id": call_id(response_id, calls),
                                "name": str(function.get("name", "")),
                                "input": function.get("args") or {}})
                calls += 1
        return message_reply(f"msg_{response_id}" if response_id else "msg_gemini",
                             str(reply.get("modelVersion") or self._backend.model), content,
                             stop_reason(candidate.get("finishReason"), calls > 0),
                             usage_from_gemini(member(reply, "usageMetadata")))

    def error_message(self, body: bytes) -> str:
        return error_message(body)
