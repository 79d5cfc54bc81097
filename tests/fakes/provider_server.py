"""A fake provider on 127.0.0.1 that replays the recorded fixtures byte for byte.

POST /v1/messages answers in Anthropic's schema (and requires x-api-key and
anthropic-version, as Anthropic does); POST /v1/chat/completions answers in OpenAI's. A request
with "stream": true gets the recorded SSE stream, sent in small pieces (with the request header
x-fake-whole-stream, in one piece with a content-length); otherwise the recorded JSON.
GET /_last returns the last request received (path, headers, body parsed and raw) for
assertions.

Run alone: python -m tests.fakes.provider_server PORT
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.fakes.http1 import HttpRequest, end_chunks, send, send_chunk, serve, start_chunked

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# A request header asking for a stream sent whole, with a content-length, not chunked.
WHOLE_STREAM_HEADER = "x-fake-whole-stream"
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

    async def _exchange(self, request: HttpRequest, _reader: asyncio.StreamReader,
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
            if headers.get(WHOLE_STREAM_HEADER):  # as some servers do: one body with a length
                await send(writer, 200, events, "text/event-stream")
            else:
                await _stream(writer, events)
        else:
            await send(writer, 200,
                       (FIXTURES / schema / "responses" / f"{case}.json").read_bytes())
        return True


async def _stream(writer: asyncio.StreamWriter, data: bytes, piece: int = 97) -> None:
    """Chunked transfer in pieces that cut through events, as real networks do."""
    start_chunked(writer, "text/event-stream; charset=utf-8", {"cache-control": "no-cache"})
    for start in range(0, len(data), piece):
        await send_chunk(writer, data[start:start + piece])
        await asyncio.sleep(0.005)
    await end_chunks(writer)


async def _main(port: int) -> None:
    server = ProviderServer(port)
    await server.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1])))
