"""Runs N worker processes, each on its own Unix socket, and restarts any that dies or hangs.

Envoy keeps one HTTP/2 connection per worker socket and balances across them round-robin;
SO_REUSEPORT would not spread load across Python processes. The workers publish snapshots of
their metrics to a directory the pool makes for them; `metrics()` sums them
(ext_proc/pool_metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import structlog

from ext_proc.liveness import answers
from ext_proc.pool_metrics import (
    METRICS_DIR_ENV,
    create_metrics_dir,
    exposition,
    remove_metrics_dir,
)

log = structlog.get_logger("pool")

# A worker that dies after it began serving is replaced at once: Envoy fails the requests
# routed to its socket until then. One that dies before it binds its socket (a bad deploy, a
# missing library) is failing to start: it waits longer each time, so the loop does not spin.
RESTART_DELAYS_S = (0.0, 0.2, 1.0, 5.0)


def restart_delay(failed_starts: int) -> float:
    """The wait before restarting a worker whose last `failed_starts` runs in a row exited
    before serving (0: the last run served)."""
    return RESTART_DELAYS_S[min(failed_starts, len(RESTART_DELAYS_S) - 1)]


def socket_path(socket_dir: str | Path, index: int) -> str:
    return str(Path(socket_dir) / f"worker-{index}.sock")


@dataclass(frozen=True)
class PoolSettings:
    workers: int
    socket_dir: str
    xds_address: str
    secrets_dir: str
    log_level: str = "info"
    node_prefix: str = "ext-proc"
    # A serving worker is pinged this often; one that misses this many pings in a row (each
    # unanswered within the timeout) has hung, and is killed to be restarted. A loaded
    # worker answers in milliseconds: its event loop takes the ping between messages.
    ping_interval_s: float = 1.0
    ping_timeout_s: float = 2.0
    ping_misses: int = 3


class WorkerPool:
    def __init__(self, settings: PoolSettings) -> None:
        self._settings = settings
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False
        self.restarts = 0
        self.metrics_dir: str | None = None  # fresh for every start, removed by `stop`

    @property
    def workers(self) -> int:
        return self._settings.workers

    @property
    def running(self) -> int:
        return sum(1 for p in self._processes.values() if p.returncode is None)

    def metrics(self) -> bytes:
        """The Prometheus text exposition of every worker, summed. Reads files: call it off
        the event loop."""
        return exposition(self, self.metrics_dir)

    @property
    def sockets(self) -> list[str]:
        return [socket_path(self._settings.socket_dir, i) for i in range(self._settings.workers)]

    def healthy(self) -> bool:
        return len(self._processes) == self._settings.workers and all(
            p.returncode is None for p in self._processes.values())

    async def wait_serving(self, timeout_s: float = 30.0) -> bool:
        """True once every worker has bound its socket (it binds after its first policy)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await asyncio.to_thread(lambda: all(Path(p).exists() for p in self.sockets)):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def run(self) -> None:
        """Start every worker and keep them running until `stop`."""
        await asyncio.to_thread(Path(self._settings.socket_dir).mkdir, parents=True,
                                exist_ok=True)
        self.metrics_dir = await asyncio.to_thread(create_metrics_dir)
        await asyncio.gather(*(self._keep_running(i) for i in range(self._settings.workers)))

    async def stop(self) -> None:
        self._stopping = True
        for process in self._processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in self._processes.values():
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self.metrics_dir is not None:
            await asyncio.to_thread(remove_metrics_dir, self.metrics_dir)

    async def _keep_running(self, index: int) -> None:
        socket = Path(socket_path(self._settings.socket_dir, index))
        failed_starts = 0
        while not self._stopping:
            # A dead worker's socket file stays: removed, its presence means the new one serves.
            await asyncio.to_thread(socket.unlink, missing_ok=True)
            process = await self._spawn(index)
            self._processes[index] = process
            watchdog = asyncio.create_task(self._kill_if_hung(index, process, socket))
            code = await process.wait()
            watchdog.cancel()
            served = await asyncio.to_thread(socket.exists)
            failed_starts = 0 if served else failed_starts + 1
            if self._stopping:
                return
            self.restarts += 1
            delay = restart_delay(failed_starts)
            log.error("worker exited; restarting", worker=index, code=code, delay_s=delay)
            await asyncio.sleep(delay)

    async def _kill_if_hung(self, index: int, process: asyncio.subprocess.Process,
                            socket: Path) -> None:
        """Kills a serving worker that stopped answering; `_keep_running` restarts it."""
        s, misses = self._settings, 0
        while misses < s.ping_misses:
            await asyncio.sleep(s.ping_interval_s)
            if self._stopping:
                return  # a stopping worker refuses new calls while it drains its records
            if not await asyncio.to_thread(socket.exists):
                continue  # still starting: it binds its socket after its first policy
            misses = 0 if await answers(str(socket), s.ping_timeout_s) else misses + 1
        log.error("worker stopped answering; killing it", worker=index, pid=process.pid,
                  missed_pings=misses)
        with contextlib.suppress(ProcessLookupError):
            process.kill()

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        s = self._settings
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ext_proc.worker",
            "--socket", socket_path(s.socket_dir, index),
            "--xds-address", s.xds_address,
            "--node-id", f"{s.node_prefix}-{index}",
            "--secrets-dir", s.secrets_dir,
            "--log-level", s.log_level,
            env=self._worker_env(),
        )

    def _worker_env(self) -> dict[str, str]:
        # prometheus-client's own multiprocess mode, if the environment asks for it, would
        # write files on every update: the workers count in memory (ext_proc/pool_metrics.py).
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        if self.metrics_dir is not None:
            env[METRICS_DIR_ENV] = self.metrics_dir
        return env
