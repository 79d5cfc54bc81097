"""The control plane, the worker pool and Envoy as separate processes, as the Helm chart runs
them, so that one can be stopped and started while the others serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from tests.support.ports import free_port

START_TIMEOUT_S = 30.0


def wait_until(predicate: Callable[[], object], timeout_s: float) -> float:
    """Seconds until predicate() holds; an AssertionError past timeout_s."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout_s, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - started


class Components:

    def __init__(self, work: Path, policy: Path) -> None:
        self.work, self.policy = work, policy
        self.listener, self.xds, self.admin, self.envoy_admin = (free_port() for _ in range(4))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener}"

    @property
    def ledger_path(self) -> Path:
        """The workers' SQLite ledger (the policy's default state)."""
        return self.work / "state" / "ledger.sqlite"

    def start(self, name: str, *args: str, env: Mapping[str, str] | None = None) -> None:
        log = (self.work / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "control_plane", *args], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "SWITCHBOARD_WORK_DIR": str(self.work),
                 "SWITCHBOARD_STATE_DIR": str(self.work / "state"), **(env or {})},
            cwd=Path(__file__).parents[2])

    def start_all(self, workers: int = 2, ext_proc_env: Mapping[str, str] | None = None) -> None:
        """Every component; `ext_proc_env` is added to the worker processes' environment."""
        self.start_control_plane()
        sockets = self.work / "sockets"
        self.start("ext-proc", "ext-proc", "--workers", str(workers), "--socket-dir",
                   str(sockets), "--xds-address", f"127.0.0.1:{self.xds}", env=ext_proc_env)
        wait_until(lambda: len(list(sockets.glob("*.sock"))) == workers, START_TIMEOUT_S)
        self.start("envoy", "envoy", "--xds-address", f"127.0.0.1:{self.xds}",
                   "--ext-proc-socket-dir", str(sockets), "--workers", str(workers),
                   "--admin-port", str(self.envoy_admin))
        wait_until(lambda: self.all_acked(workers + 1), START_TIMEOUT_S)

    def start_control_plane(self) -> None:
        self.start("control-plane", "control-plane", "--policy", str(self.policy),
                   "--listen-host", "127.0.0.1", "--listener-host", "127.0.0.1",
                   "--listener-port", str(self.listener), "--xds-port", str(self.xds),
                   "--admin-port", str(self.admin))

    def status(self) -> dict[str, object]:
        result: dict[str, object] = httpx.get(f"http://127.0.0.1:{self.admin}/status",
                                              timeout=2).json()
        return result

    def all_acked(self, count: int = 3) -> bool:
        try:
            status = self.status()
        except httpx.HTTPError:
            return False
        version = status["policy"]["version"]  # type: ignore[index]
        clients = status["clients"]
        assert isinstance(clients, list)
        return len(clients) == count and all(
            set(c["acked"].values()) == {version} for c in clients)

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
