"""The end of a streamed answer, as its client sees it.

A client can only tell a complete stream from a cut one by its terminator: OpenAI's
`data: [DONE]`, Anthropic's `message_stop` (or, for either, an error event). When the
provider's body ends cleanly without one (a truncated answer, a provider that closed early),
the guard appends an error event in the client's schema, so no SDK mistakes half an answer
for a whole one. It reads only the bytes sent to the client, whatever translator produced
them. A connection reset mid-stream never reaches it: Envoy then resets the client's stream.
"""

from __future__ import annotations

import re

import orjson

from ext_proc.contract import ClientApi
from ext_proc.errors import error_kind

_TERMINATORS = {
    "openai": re.compile(rb'data:[ \t]*(?:\[DONE\]|\{[ \t]*"error")'),
    "anthropic": re.compile(rb"event:[ \t]*(?:message_stop|error)\b"),
}
# Longer than any terminator, so one split across two chunks is still seen.
_TAIL = 64
INCOMPLETE_MESSAGE = "The provider's stream ended before the answer was complete."


class StreamGuard:
    def __init__(self, api: ClientApi) -> None:
        self._style = api.error_style
        self._terminator = _TERMINATORS[self._style]
        self._tail = b""
        self.finished = False

    def watch(self, sent: bytes, end_of_stream: bool) -> bytes:
        """Record bytes sent to the client; returns what must follow them (usually nothing)."""
        if not self.finished:
            window = self._tail + sent
            self.finished = self._terminator.search(window) is not None
            self._tail = window[-_TAIL:]
        if not end_of_stream or self.finished:
            return b""
        self.finished = True
        return self._separator() + error_event(self._style, INCOMPLETE_MESSAGE)

    def _separator(self) -> bytes:
        """Ends whatever event the provider left open, so ours is read as an event of its own."""
        if not self._tail or self._tail.endswith((b"\n\n", b"\r\n\r\n")):
            return b""
        return b"\n" if self._tail.endswith(b"\n") else b"\n\n"


def error_event(style: str, message: str, status: int = 502) -> bytes:
    kind = error_kind(status)
    if style == "anthropic":
        return b"event: error\ndata: " + orjson.dumps({"type": "error", "error": {
            "type": kind.anthropic_type, "message": message}}) + b"\n\n"
    return b"data: " + orjson.dumps({"error": {
        "message": message, "type": kind.openai_type, "code": kind.openai_code}}) + b"\n\n"
