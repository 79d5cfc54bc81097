"""The pool's restarts: a worker that served comes back at once; one failing to start backs
off."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

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
