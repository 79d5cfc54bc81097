"""A fake provider on 127.0.0.1 that replays the recorded fixtures byte for byte.

POST /v1/messages answers in Anthropic's schema (and requires x-api-key and
anthropic-version, as Anthropic does); POST /v1/chat/completions answers in OpenAI's. A request
with "stream": true gets the recorded SSE stream, sent in small pieces; otherwise the recorded
JSON. GET /_last returns the last request received (path, headers, body) for assertions.

Run alone: python -m tests.fakes.provider_server PORT
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
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
        try:
            while await self._exchange(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if method == "GET" and path == "/_last":
            await _send(writer, 200, "application/json", orjson.dumps(self.last))
            return True
        self.last = {"path": path, "headers": headers, "body": orjson.loads(body or b"{}")}
        if path not in _REPLAYS:
            await _send(writer, 404, "application/json", b'{"error": "no such path"}')
            return True
        schema, case = _REPLAYS[path]
        if schema == "anthropic" and not (headers.get("x-api-key")
                                          and headers.get("anthropic-version")):
            await _send(writer, 401, "application/json", orjson.dumps({
                "type": "error", "error": {"type": "authentication_error",
                                           "message": "invalid x-api-key"}}))
            return True
        if self.last["body"].get("stream") is True:
            await _stream(writer, (FIXTURES / schema / "streams" / f"{case}.sse").read_bytes())
        else:
            await _send(writer, 200, "application/json",
                        (FIXTURES / schema / "responses" / f"{case}.json").read_bytes())
        return True


async def _send(writer: asyncio.StreamWriter, status: int, content_type: str,
                body: bytes) -> None:
    writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n"
                 f"content-length: {len(body)}\r\n\r\n".encode() + body)
    await writer.drain()


async def _stream(writer: asyncio.StreamWriter, data: bytes, piece: int = 97) -> None:
    """Chunked transfer in pieces that cut through events, as real networks do."""
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                 b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
    for start in range(0, len(data), piece):
        part = data[start:start + piece]
        writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.005)
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def _main(port: int) -> None:
    server = ProviderServer(port)
    await server.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1])))
