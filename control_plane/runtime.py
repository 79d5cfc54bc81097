"""Long-running pieces shared by `up` and the single-component commands."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Iterator

import uvicorn

from control_plane.admin import admin_app
from control_plane.housekeeping import Housekeeper
from control_plane.service import ControlPlane
from control_plane.usage import LedgerSource


def stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process's supervisor owns the signals."""

    task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_admin(control_plane: ControlPlane, host: str, port: int, *,
                      ledgers: LedgerSource | None = None,
                      housekeeper: Housekeeper | None = None) -> uvicorn.Server:
    app = admin_app(control_plane, ledgers=ledgers, housekeeper=housekeeper)
    config = uvicorn.Config(app, host=host, port=port,
                            log_level="warning", access_log=False, lifespan="off")
    server = _Server(config)
    server.task = asyncio.create_task(server.serve())
    return server


async def wait_first(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()

