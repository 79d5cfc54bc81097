"""The attempt's cost, written into the stream event that carries the final usage.

Where the client's API has a place for it: OpenAI chat gets `usage.cost` in the chunk that
carries `usage` (sent only to clients that set `stream_options.include_usage`), Anthropic
Messages gets `usage.cost` in `message_delta`. The value is the text of `x-switchboard-cost-usd`
written as a JSON number, so all three agree; an unpriced attempt gets no field.

Only that event is parsed and re-encoded. The other bytes pass as they are, with one change:
an event is never sent in part. Bytes after the last blank line wait for the rest of their event
(an SSE client cannot act on half an event anyway), so the event that turns out to carry the
usage has not been sent yet when it is recognised. Translators that re-encode a stream already
send whole events; this matters for the pass-through ones, whose chunks cut events anywhere.

The usage may become known on an earlier chunk than the one that carries it to the client (a
translator that writes the usage chunk only at the answer's end), so each chunk is searched,
with one regular expression, for the mark of a usage-carrying event.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from ext_proc.contract import ClientApi
from ext_proc.meter import format_usd
from ext_proc.metering.usage import TokenUsage
from ext_proc.translators.base import ClientRequest

COST_FIELD = "cost"

# A cheap first test, on the bytes: can this chunk hold a usage-carrying event? A JSON string
# inside content has its quotes escaped, so text that merely mentions these never matches.
_MARKS = {
    ClientApi.OPENAI_CHAT: re.compile(rb'"usage"\s*:\s*\{'),
    ClientApi.ANTHROPIC_MESSAGES: re.compile(rb'"message_delta"'),
}
_BLANK = (b"\n", b"\r\n", b"\r")

Priced = Callable[[], tuple[TokenUsage, Decimal | None]]


def stream_cost(api: ClientApi, request: ClientRequest) -> StreamCost | None:
    """The writer for a request whose answer may be streamed, or None when its client has no
    place for a cost: not a stream, or an OpenAI client that did not ask for usage."""
    if not request.stream or api not in _MARKS:
        return None
    if api is ClientApi.OPENAI_CHAT and not request.include_usage:
        return None
    return StreamCost(api)


class StreamCost:
    def __init__(self, api: ClientApi) -> None:
        self._api = api
        self._mark = _MARKS[api]
        self._held = b""  # the start of an event whose end has not arrived

    def send(self, sent: bytes, end_of_stream: bool, priced: Priced) -> bytes | None:
        """The bytes to send instead of `sent`, or None to send `sent` as it is. `priced` gives
        the attempt's usage and cost so far; it is called only for a usage-carrying event."""
        held = self._held
        data = held + sent if held else sent
        end = len(data) if end_of_stream else _complete(data)
        ready, self._held = data[:end], data[end:]
        changed = bool(held) or end < len(data)
        if self._mark.search(ready) is not None:
            rewritten = self._rewrite(ready, priced)
            if rewritten is not None:
                return rewritten
        return ready if changed else None

    def _rewrite(self, data: bytes, priced: Priced) -> bytes | None:
        out: list[bytes] = []
        event: list[bytes] = []
        found = False
        for line in data.splitlines(keepends=True):
            event.append(line)
            if line in _BLANK:
                found |= self._event(event, out, priced)
                event = []
        found |= self._event(event, out, priced)  # only at the end of the stream
        return b"".join(out) if found else None

    def _event(self, lines: list[bytes], out: list[bytes], priced: Priced) -> bool:
        """Appends the event to `out`, with the cost when it carries the usage."""
        rewritten = (self._with_cost(lines, priced)
                     if self._mark.search(b"".join(lines)) else None)
        out.extend(lines if rewritten is None else rewritten)
        return rewritten is not None

    def _with_cost(self, lines: list[bytes], priced: Priced) -> list[bytes] | None:
        data = [index for index, line in enumerate(lines) if _is_data(line)]
        if not data:
            return None
        try:
            payload = orjson.loads(b"\n".join(_value(lines[index]) for index in data))
        except orjson.JSONDecodeError:
            return None
        usage = self._usage_of(payload)
        if usage is None:
            return None
        counted, cost = priced()
        if cost is None or counted.estimated:
            return None
        usage[COST_FIELD] = orjson.Fragment(format_usd(cost))
        encoded = b"data: " + orjson.dumps(payload) + b"\n"
        return [*lines[:data[0]], encoded,
                *(line for line in lines[data[0] + 1:] if not _is_data(line))]

    def _usage_of(self, payload: Any) -> dict[str, Any] | None:
        if not isinstance(payload, dict):
            return None
        usage = payload.get("usage")
        if not isinstance(usage, dict):
            return None
        if self._api is ClientApi.ANTHROPIC_MESSAGES and payload.get("type") != "message_delta":
            return None
        return usage


def _complete(data: bytes) -> int:
    """The length of the leading part of `data` made of whole events: up to its last blank
    line, whichever line endings (LF, CRLF, CR) the stream uses."""
    if data.endswith(b"\n\n"):
        return len(data)
    # Every blank line holds one of these: a line ending followed by LF-LF, LF-CR or CR-CR.
    end = max(data.rfind(b"\n\n"), data.rfind(b"\n\r"), data.rfind(b"\r\r"))
    if end < 0:
        return 0
    end += 2
    if data[end - 1:end] == b"\r" and data[end:end + 1] == b"\n":
        end += 1  # the LF of a CRLF stays with its CR
    return end


def _is_data(line: bytes) -> bool:
    return line.startswith(b"data:") or line.rstrip(b"\r\n") == b"data"


def _value(line: bytes) -> bytes:
    value = line.rstrip(b"\r\n")[5:]
    return value[1:] if value.startswith(b" ") else value
