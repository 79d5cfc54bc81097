"""HTTP/1.1 plumbing shared by the asyncio fakes: read a request, keep a connection serving,
write a whole reply or a chunked one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# One request/reply on a connection; False closes the connection.
Exchange = Callable[["HttpRequest", asyncio.StreamReader, asyncio.StreamWriter],
                    Awaitable[bool]]


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> HttpRequest:
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return HttpRequest(method, path, headers, body)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                exchange: Exchange) -> None:
    """Answer requests on one connection until the client or `exchange` ends it."""
    try:
        while await exchange(await read_request(reader), reader, writer):
            pass
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def send(writer: asyncio.StreamWriter, status: int, body: bytes,
               content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> None:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    writer.write(f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n"
                 f"content-length: {len(body)}\r\n{extra}\r\n".encode() + body)
    await writer.drain()


def start_chunked(writer: asyncio.StreamWriter, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    writer.write(f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n{extra}"
                 "transfer-encoding: chunked\r\n\r\n".encode())


async def send_chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


async def end_chunks(writer: asyncio.StreamWriter) -> None:
    writer.write(b"0\r\n\r\n")
    await writer.drain()
