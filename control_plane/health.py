"""The worker pool's small HTTP endpoint: `GET /metrics` for Prometheus, any other path the
health probe (200 while healthy, else 503).

One request per connection, no framework: the probes and the scrape are all it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ext_proc.pool_metrics import CONTENT_TYPE

METRICS_PATH = "/metrics"
# How long a client may take to send its request head.
READ_TIMEOUT_S = 10.0


def request_path(head: bytes) -> str:
    """The path of an HTTP/1.x request head, without its query ('' when unreadable)."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3:
        return ""
    return parts[1].decode("latin-1").partition("?")[0]


def _response(status: bytes, body: bytes = b"", content_type: str = "") -> bytes:
    head = b"HTTP/1.1 " + status + b"\r\ncontent-length: " + str(len(body)).encode()
    if content_type:
        head += b"\r\ncontent-type: " + content_type.encode()
    return head + b"\r\nconnection: close\r\n\r\n" + body


async def serve_health(healthy: Callable[[], bool], host: str, port: int,
                       metrics: Callable[[], bytes] | None = None) -> asyncio.Server:
    """Serve probes on `host:port`, and `metrics()` (called in a thread) on /metrics."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError,
                                 asyncio.LimitOverrunError, TimeoutError):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            if request_path(head) == METRICS_PATH:
                if metrics is None:
                    reply = _response(b"404 Not Found")
                else:
                    reply = _response(b"200 OK", await asyncio.to_thread(metrics), CONTENT_TYPE)
            else:
                reply = _response(b"200 OK" if healthy() else b"503 Service Unavailable")
            writer.write(reply)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, host, port)
