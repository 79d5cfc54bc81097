"""The fake provider on a loop of its own, for module-scoped fixtures of integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from tests.fakes.provider_server import ProviderServer


@contextlib.contextmanager
def running_provider(port: int) -> Iterator[ProviderServer]:
    server = ProviderServer(port)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(5)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
