"""Amazon Bedrock's Converse API as a Messages-shaped backend (see via_messages.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ext_proc.translators.base import Backend, UpstreamRequest
from ext_proc.translators.bedrock_request import to_converse
from ext_proc.translators.bedrock_schema import (
    EVENT_STREAM,
    REQUEST_ID_HEADER,
    STOP_REASONS,
    model_path,
    usage_from_bedrock,
)
from ext_proc.translators.bedrock_stream import ConverseStream
from ext_proc.translators.common import error_message, member
from ext_proc.translators.messages_events import message_reply


class BedrockConverse:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._request_id = ""

    def request(self, messages: dict[str, Any]) -> UpstreamRequest:
        action = "converse-stream" if messages.get("stream") is True else "converse"
        return UpstreamRequest(model_path(self._backend, action),
                               orjson.dumps(to_converse(messages)))

    def is_stream(self, headers: Mapping[str, str]) -> bool:
        self._request_id = headers.get(REQUEST_ID_HEADER, "")
        return headers.get("content-type", "").startswith(EVENT_STREAM)

    def stream(self) -> ConverseStream:
        return ConverseStream(self._backend.model, self._message_id())

    def message(self, reply: dict[str, Any]) -> dict[str, Any] | None:
        message = member(member(reply, "output"), "message")
        blocks = message.get("content")
        if not isinstance(blocks, list):
            return None
        content: list[dict[str, Any]] = []
        for block in blocks:
            if not isinstance(block, dict):
                continue
            if isinstance(text := block.get("text"), str):
                content.append({"type": "text", "text": text})
            elif isinstance(tool := block.get("toolUse"), dict):
                content.append({"type": "tool_use", "id": str(tool.get("toolUseId", "")),
                                "name": str(tool.get("name", "")),
                                "input": tool.get("input") or {}})
        stop = STOP_REASONS.get(str(reply.get("stopReason")), "end_turn")
        return message_reply(self._message_id(), self._backend.model, content, stop,
                             usage_from_bedrock(member(reply, "usage")))

    def error_message(self, body: bytes) -> str:
        return error_message(body)

    def _message_id(self) -> str:
        return f"msg_bdrk_{self._request_id}" if self._request_id else "msg_bdrk"
