"""ConverseStream's binary AWS event stream, decoded incrementally, as Messages events.

botocore's EventStreamBuffer keeps a frame that a chunk cut in two until the rest arrives and
checks both CRCs. The answer is finished at messageStop; the usage arrives after it, in the
metadata event, so message_delta and message_stop wait for metadata or the end of the body.
"""

from __future__ import annotations

from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from ext_proc.translators.base import Usage
from ext_proc.translators.bedrock_schema import STOP_REASONS, usage_from_bedrock
from ext_proc.translators.messages_events import MessageEvents


class ConverseStream:
    def __init__(self, model: str, message_id: str) -> None:
        self._buffer = EventStreamBuffer()
        self._events = MessageEvents(model)
        self._message_id = message_id
        self._stop_reason: str | None = None
        self._usage = Usage()

    def feed(self, chunk: bytes, end_of_stream: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self._buffer.add_data(chunk)
        try:
            for frame in self._buffer:
                if not self._events.ended:
                    out.extend(self._frame(frame))
        except ParserError:
            out.extend(self._events.error("the provider's event stream is corrupt"))
        if end_of_stream and not self._events.ended:
            out.extend(self._events.finish(self._stop_reason, self._usage)
                       if self._stop_reason else
                       self._events.error("the provider's stream ended before the answer did"))
        return out

    def _frame(self, frame: EventStreamMessage) -> list[dict[str, Any]]:
        headers = frame.headers
        try:
            payload = orjson.loads(frame.payload) if frame.payload else {}
        except orjson.JSONDecodeError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        kind = headers.get(":message-type")
        if kind != "event":
            name = headers.get(":exception-type") or headers.get(":error-code") or "error"
            message = payload.get("message") or headers.get(":error-message") or name
            return self._events.error(f"{name}: {message}", _ERROR_TYPES.get(name, "api_error"))
        return self._event(str(headers.get(":event-type")), payload)

    def _event(self, kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._events
        index = payload.get("contentBlockIndex")
        if kind == "messageStart":
            return events.start(self._message_id)
        if kind == "contentBlockStart":
            start = payload.get("start")
            tool = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(tool, dict):
                return events.tool_start(index, str(tool.get("toolUseId", "")),
                                         str(tool.get("name", "")))
            return []
        if kind == "contentBlockDelta":
            delta = payload.get("delta")
            if not isinstance(delta, dict):
                return []
            if isinstance(text := delta.get("text"), str):
                return events.text(index, text)
            tool = delta.get("toolUse")
            if isinstance(tool, dict) and isinstance(tool.get("input"), str):
                return events.tool_input(index, tool["input"])
            return []  # reasoning deltas have no place in the client's answer
        if kind == "contentBlockStop":
            return events.close()
        if kind == "messageStop":
            self._stop_reason = STOP_REASONS.get(str(payload.get("stopReason")), "end_turn")
            return events.close()
        if kind == "metadata" and self._stop_reason is not None:
            usage = payload.get("usage")
            self._usage = usage_from_bedrock(usage if isinstance(usage, dict) else {})
            return events.finish(self._stop_reason, self._usage)
        return []


# The exception frames of ConverseStream, by the error type a Messages client knows.
_ERROR_TYPES = {"throttlingException": "rate_limit_error",
                "serviceUnavailableException": "overloaded_error",
                "validationException": "invalid_request_error"}
