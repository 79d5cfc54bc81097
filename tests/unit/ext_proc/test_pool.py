"""The pool's restarts: a worker that served comes back at once; one failing to start backs
off; one that stops answering its pings is killed and comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ext_proc.liveness import answers
from ext_proc.pool import PoolSettings, WorkerPool, restart_delay, socket_path


def test_a_worker_that_served_restarts_at_once_and_failed_starts_wait_longer() -> None:
    assert [restart_delay(n) for n in range(6)] == [0.0, 0.2, 1.0, 5.0, 5.0, 5.0]


class ExitingPool(WorkerPool):
    """A pool whose workers exit at once, after binding their socket or before."""

    def __init__(self, settings: PoolSettings, *, serve: bool) -> None:
        super().__init__(settings)
        self.serve = serve
        self.third_start = asyncio.Event()
        self.starts = 0

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        self.starts += 1
        if self.starts == 3:
            self.third_start.set()
        bind = f"open({socket_path(self._settings.socket_dir, index)!r}, 'w');" * self.serve
        return await asyncio.create_subprocess_exec(sys.executable, "-c",
                                                    bind + "raise SystemExit(3)")


@pytest.mark.parametrize(("serve", "delays"), [(True, [0.0, 0.0]), (False, [0.2, 1.0])])
async def test_restarts_wait_only_after_a_worker_that_never_served(
        tmp_path: Path, serve: bool, delays: list[float]) -> None:
    pool = ExitingPool(PoolSettings(workers=1, socket_dir=str(tmp_path), xds_address="",
                                    secrets_dir=str(tmp_path)), serve=serve)
    with capture_logs() as logs:
        running = asyncio.create_task(pool.run())
        try:
            await asyncio.wait_for(pool.third_start.wait(), 20)
        finally:
            await pool.stop()
            running.cancel()
    restarts = [entry for entry in logs if entry["event"] == "worker exited; restarting"]
    assert [entry["delay_s"] for entry in restarts[:2]] == delays
    assert {entry["code"] for entry in restarts} == {3}
    assert pool.restarts >= 2


# A worker as the pool's ping sees it: the worker's own liveness service on its socket.
PINGED_WORKER = """
import asyncio, sys
import grpc
from ext_proc.liveness import add_liveness

async def main():
    server = grpc.aio.server()
    add_liveness(server)
    server.add_insecure_port("unix:" + sys.argv[1])
    await server.start()
    await server.wait_for_termination()

asyncio.run(main())
"""


class PingedPool(WorkerPool):
    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", PINGED_WORKER, socket_path(self._settings.socket_dir, index))


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_worker_that_stops_answering_is_killed_and_restarted(tmp_path: Path) -> None:
    pool = PingedPool(PoolSettings(workers=1, socket_dir=str(tmp_path), xds_address="",
                                   secrets_dir=str(tmp_path), ping_interval_s=0.2,
                                   ping_timeout_s=0.5, ping_misses=2))
    socket = socket_path(tmp_path, 0)
    with capture_logs() as logs:
        running = asyncio.create_task(pool.run())
        try:
            await _until(lambda: answers(socket, 0.5), 20)
            await asyncio.sleep(1.0)  # five pings answered: a live worker is left alone
            assert pool.restarts == 0
            hung = pool._processes[0].pid
            os.kill(hung, signal.SIGSTOP)  # alive, socket bound, answering nothing

            async def replaced() -> bool:
                return pool._processes[0].pid != hung and await answers(socket, 0.5)
            await _until(replaced, 20)
        finally:
            await pool.stop()
            running.cancel()
    [killed] = [e for e in logs if e["event"] == "worker stopped answering; killing it"]
    assert (killed["pid"], killed["missed_pings"]) == (hung, 2)
    assert pool.restarts == 1
