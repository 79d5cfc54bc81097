"""A fake provider that fails on request, for failover tests.

It answers POST .../chat/completions in OpenAI's schema (generated like `openai_server`) and
POST .../v1/messages in Anthropic's (the recorded fixtures). A request fails when it carries
`x-fault-<name>: <fault>` for this fake's name; the header passes through the gateway to every
attempt, so one request can make the first target fail and let the second one answer:

| fault | what the fake does |
|---|---|
| `500`, `503`, ... | that status with an error body in the fake's schema |
| `429:N` | 429 with `retry-after: N` |
| `hang` | reads the request and never answers (until the connection closes) |
| `reset` | reads the request and resets the connection before any byte |
| `break` | streams the first events, then resets the connection |
| `truncate` | streams the first events, then ends the body cleanly without the terminator |
| `stall` | streams the first events, then sends nothing more (until the connection closes) |
| `slow:S` | waits S seconds, then answers normally |

`fail-first:N:<fault>` applies <fault> to the first N requests that name it, then answers;
a `#tag` suffix (ignored otherwise) gives a test a counter of its own.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.fakes.http1 import HttpRequest, end_chunks, send, send_chunk, serve, start_chunked
from tests.fakes.openai_server import chat_chunks, chat_completion

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HANG_LIMIT_S = 60.0


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes  # the body as it arrived


@dataclass
class FaultServer:
    """Serves on 127.0.0.1 in a thread of its own; `received` lists every request in order."""

    name: str
    received: list[Request] = field(default_factory=list)
    _counts: dict[str, int] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultServer:
        loop = self._loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._connection, "127.0.0.1", 0), loop).result(5)
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        await serve(reader, writer, self._exchange)

    async def _exchange(self, request: HttpRequest, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        path, headers = request.path, request.headers
        body = orjson.loads(request.body or b"{}")
        self.received.append(Request(path, headers, body, request.body))
        anthropic = path.endswith("/v1/messages")
        fault = self._fault(headers.get(f"x-fault-{self.name}", ""))
        if fault.startswith("slow:"):
            await asyncio.sleep(float(fault.partition(":")[2]))
            fault = ""
        if fault == "hang":
            await asyncio.wait_for(reader.read(), HANG_LIMIT_S)
            return False
        if fault == "reset":
            _reset(writer)
            return False
        if fault.partition(":")[0].isdigit():
            status, _, retry_after = fault.partition(":")
            await send(writer, int(status), _error(anthropic, int(status)),
                       headers={"retry-after": retry_after} if retry_after else {})
            return True
        if body.get("stream") is True:
            return await self._stream(reader, writer, body, anthropic, fault)
        payload = ((FIXTURES / "anthropic" / "responses" / "text.json").read_bytes()
                   if anthropic else orjson.dumps(chat_completion(body, self.name)))
        await send(writer, 200, payload)
        return True

    def _fault(self, value: str) -> str:
        """The fault this request suffers; `fail-first:N:F` counts per header value."""
        if not value.startswith("fail-first:"):
            return value.partition("#")[0]
        _, count, fault = value.partition("#")[0].split(":", 2)
        seen = self._counts[value] = self._counts.get(value, 0) + 1
        return fault if seen <= int(count) else ""

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      body: dict[str, Any],
                      anthropic: bool, fault: str) -> bool:
        if anthropic:
            text = (FIXTURES / "anthropic" / "streams" / "text.sse").read_bytes()
            events = [e + b"\n\n" for e in text.split(b"\n\n") if e.strip()]
        else:
            events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chat_chunks(body, self.name)]
            events.append(b"data: [DONE]\n\n")
        start_chunked(writer, "text/event-stream")
        cut = 3 if fault in ("break", "truncate", "stall") else len(events)
        for event in events[:cut]:
            await send_chunk(writer, event)
            await asyncio.sleep(0.01)
        if fault == "break":
            _reset(writer)
            return False
        if fault == "stall":
            await asyncio.wait_for(reader.read(), HANG_LIMIT_S)
            return False
        await end_chunks(writer)
        return True


def _error(anthropic: bool, status: int) -> bytes:
    message = f"failed on purpose with {status}"
    if anthropic:
        return orjson.dumps({"type": "error", "error": {"type": "api_error", "message": message}})
    return orjson.dumps({"error": {"message": message, "type": "server_error", "param": None,
                                   "code": None}})


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN: what a crashed or cut connection looks like."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
