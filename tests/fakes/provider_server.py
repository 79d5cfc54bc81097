"""A fake provider on 127.0.0.1 that replays the recorded fixtures byte for byte.

POST /v1/messages answers in Anthropic's schema (and requires x-api-key and
anthropic-version, as Anthropic does); POST /v1/chat/completions answers in OpenAI's. A request
with "stream": true gets the recorded SSE stream, sent in small pieces (with the request header
x-fake-whole-stream, in one piece with a content-length; with x-fake-hold-after: TEXT, the
stream stops after the event holding TEXT until the gateway hangs up or for HOLD_SECONDS, as a
provider slow to end its body does; with x-fake-cut-at: N, the stream's first N bytes alone,
ended cleanly, as a provider cut inside an event); otherwise the recorded JSON.
GET /_last returns the last request received (path, headers, body parsed and raw) for
assertions.

Run alone: python -m tests.fakes.provider_server PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.fakes.http1 import HttpRequest, end_chunks, send, send_chunk, serve, start_chunked

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# A request header asking for a stream sent whole, with a content-length, not chunked.
WHOLE_STREAM_HEADER = "x-fake-whole-stream"
HOLD_AFTER_HEADER = "x-fake-hold-after"
CUT_AT_HEADER = "x-fake-cut-at"
HOLD_SECONDS = 2.0
_REPLAYS = {
    "/v1/messages": ("anthropic", "text"),
    "/v1/chat/completions": ("openai", "text"),
}


class ProviderServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.last: dict[str, Any] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        await serve(reader, writer, self._exchange)

    async def _exchange(self, request: HttpRequest, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        path, headers = request.path, request.headers
        if request.method == "GET" and path == "/_last":
            await send(writer, 200, orjson.dumps(self.last))
            return True
        raw = request.body or b"{}"
        self.last = {"path": path, "headers": headers, "body": orjson.loads(raw),
                     "raw": raw.decode()}
        if path not in _REPLAYS:
            await send(writer, 404, b'{"error": "no such path"}')
            return True
        schema, case = _REPLAYS[path]
        if schema == "anthropic" and not (headers.get("x-api-key")
                                          and headers.get("anthropic-version")):
            await send(writer, 401, orjson.dumps({
                "type": "error", "error": {"type": "authentication_error",
                                           "message": "invalid x-api-key"}}))
            return True
        if self.last["body"].get("stream") is True:
            events = (FIXTURES / schema / "streams" / f"{case}.sse").read_bytes()
            if cut_at := headers.get(CUT_AT_HEADER):
                events = events[:int(cut_at)]
            if headers.get(WHOLE_STREAM_HEADER):  # as some servers do: one body with a length
                await send(writer, 200, events, "text/event-stream")
            else:
                await _stream(reader, writer, events, headers.get(HOLD_AFTER_HEADER, ""))
        else:
            await send(writer, 200,
                       (FIXTURES / schema / "responses" / f"{case}.json").read_bytes())
        return True


async def _stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes,
                  hold_after: str = "", piece: int = 97) -> None:
    """Chunked transfer in pieces that cut through events, as real networks do."""
    start_chunked(writer, "text/event-stream; charset=utf-8", {"cache-control": "no-cache"})
    parts = [data]
    if hold_after:
        held = data.index(b"\n\n", data.index(hold_after.encode())) + 2
        parts = [data[:held], data[held:]]
    for number, part in enumerate(parts):
        if number:  # until the gateway hangs up, or HOLD_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(1), HOLD_SECONDS)
        for start in range(0, len(part), piece):
            await send_chunk(writer, part[start:start + piece])
            await asyncio.sleep(0.005)
    await end_chunks(writer)


async def _main(port: int) -> None:
    server = ProviderServer(port)
    await server.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1])))
