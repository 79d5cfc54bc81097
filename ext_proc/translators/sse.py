"""Server-sent events, parsed incrementally and encoded, for every streaming translator.

Envoy hands a streamed body over in chunks split at arbitrary bytes, even inside a UTF-8
sequence; the parser keeps the unfinished tail and yields only complete events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Event:
    event: str
    data: str


class SseParser:
    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        # The last line ended with a CR: an LF right after it is the rest of a CRLF.
        self._after_cr = False

    def feed(self, chunk: bytes, end_of_stream: bool = False) -> list[Event]:
        if chunk:
            if self._after_cr and chunk[:1] == b"\n":
                chunk = chunk[1:]
            self._after_cr = False
        self._buffer += chunk
        events: list[Event] = []
        while True:
            line, found = self._next_line()
            if not found:
                break
            self._line(line, events)
        if end_of_stream:
            if self._buffer:  # a last line without its newline still counts
                self._line(self._buffer.decode("utf-8", "replace"), events)
                self._buffer = b""
            self._line("", events)
        return events

    def _next_line(self) -> tuple[str, bool]:
        ends = [i for i in (self._buffer.find(b"\n"), self._buffer.find(b"\r")) if i >= 0]
        if not ends:
            return "", False
        index = min(ends)
        end = index + 1
        if self._buffer[index] == 0x0D:
            if end == len(self._buffer):
                self._after_cr = True  # the line ends here, whether an LF follows or not
            elif self._buffer[end] == 0x0A:
                end += 1
        line = self._buffer[:index].decode("utf-8", "replace")
        self._buffer = self._buffer[end:]
        return line, True

    def _line(self, line: str, events: list[Event]) -> None:
        if not line:
            if self._data or self._event:
                events.append(Event(self._event or "message", "\n".join(self._data)))
            self._event, self._data = "", []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)


def encode(data: Any, event: str | None = None) -> bytes:
    """One event; `data` is serialised as JSON unless it is already bytes."""
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + payload + b"\n\n"


def json_data(event: Event) -> dict[str, Any] | None:
    """The event's data as a JSON object, or None when it is not one."""
    try:
        value = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
