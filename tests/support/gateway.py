"""Runs the real gateway (`switchboard up`: Envoy, control plane, workers) for a test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from control_plane.compiler.settings import EXT_PROC_CLUSTER
from tests.support.ports import free_port

START_TIMEOUT_S = 40.0


@dataclass
class Gateway:
    policy_path: Path
    process: subprocess.Popen[bytes]
    port: int
    admin_port: int
    envoy_admin_port: int
    log_path: Path
    ext_proc_health_port: int

    def worker_messages(self) -> int:
        """ext_proc messages Envoy sent to the workers from every provider's or model's
        cluster: the attempts' calls (Envoy's own statistics)."""
        text = httpx.get(f"http://127.0.0.1:{self.envoy_admin_port}/stats", timeout=5, params={
            "filter": r"^cluster\.(provider|model)_.*ext_proc\.stream_msgs_sent$"}).text
        return sum(int(line.rpartition(":")[2]) for line in text.splitlines() if line.strip())

    def admission_messages(self) -> int:
        """ext_proc messages Envoy sent to the workers' admission (the router-level call)."""
        text = httpx.get(f"http://127.0.0.1:{self.envoy_admin_port}/stats", timeout=5, params={
            "filter": r"^http\.switchboard\.ext_proc\.stream_msgs_sent$"}).text
        return sum(int(line.rpartition(":")[2]) for line in text.splitlines() if line.strip())

    def worker_streams(self) -> dict[str, int]:
        """Streams open from Envoy to each worker (by its socket), Envoy's own count."""
        text = httpx.get(f"http://127.0.0.1:{self.envoy_admin_port}/clusters", timeout=5).text
        streams = {}
        for line in text.splitlines():  # switchboard_ext_proc::<socket>::rq_active::<n>
            cluster, _, rest = line.partition("::")
            host, found, count = rest.partition("::rq_active::")
            if cluster == EXT_PROC_CLUSTER and found:
                streams[host] = int(count)
        return streams

    def envoy_threads(self) -> int:
        info = httpx.get(f"http://127.0.0.1:{self.envoy_admin_port}/server_info", timeout=5)
        return int(info.json()["command_line_options"]["concurrency"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_policy(self, text: str) -> None:
        """Replace the policy file the way an editor or a ConfigMap swap does: atomically."""
        temporary = self.policy_path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(self.policy_path)

    def status(self) -> dict[str, object]:
        response = httpx.get(f"http://127.0.0.1:{self.admin_port}/status", timeout=5)
        result: dict[str, object] = response.json()
        return result

    @property
    def ledger_path(self) -> Path:
        return self.policy_path.parent / "state" / "ledger.sqlite"

    def metrics(self) -> str:
        """The workers' Prometheus metrics, summed over every worker."""
        response = httpx.get(f"http://127.0.0.1:{self.ext_proc_health_port}/metrics", timeout=5)
        response.raise_for_status()
        return response.text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def access_log_line(self, marker: str, timeout_s: float = 10) -> dict[str, Any]:
        """The JSON line Envoy's access log wrote for the one request whose line holds
        `marker` (its request id, say), once it is there."""
        deadline = time.monotonic() + timeout_s
        while True:
            lines = [json.loads(line) for line in self.log().splitlines()
                     if line.startswith("{") and marker in line and '"flags"' in line]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        [line] = lines
        return line

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_gateway(policy: str, work_dir: Path, env: dict[str, str] | None = None,
                  workers: int = 2, extra_args: tuple[str, ...] = ()) -> Gateway:
    policy_path = work_dir / "policy.yaml"
    policy_path.write_text(policy)
    ports = [free_port() for _ in range(5)]
    log_path = work_dir / "gateway.log"
    command = [
        sys.executable, "-m", "control_plane", "up", "--policy", str(policy_path),
        "--workers", str(workers), "--listener-port", str(ports[0]),
        "--xds-port", str(ports[1]), "--admin-port", str(ports[2]),
        "--envoy-admin-port", str(ports[3]), "--ext-proc-health-port", str(ports[4]),
        *extra_args,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ,
                                        "SWITCHBOARD_STATE_DIR": str(work_dir / "state"),
                                        **(env or {})},
                                   cwd=Path(__file__).parents[2])
    gateway = Gateway(policy_path, process, ports[0], ports[2], ports[3], log_path, ports[4])
    _wait_ready(gateway)
    return gateway


def _wait_ready(gateway: Gateway) -> None:
    """Ready when Envoy's listener answers and every worker holds the policy."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"gateway exited early:\n{gateway.log()}")
        try:
            models = httpx.get(f"{gateway.url}/v1/models", timeout=1)
            ready = httpx.get(f"http://127.0.0.1:{gateway.envoy_admin_port}/ready", timeout=1)
            # 401: the policy takes gateway keys, and the listener answered.
            if models.status_code in (200, 401) and ready.status_code == 200 and _workers_synced(
                    gateway):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    gateway.stop()
    raise RuntimeError(f"gateway not ready in {START_TIMEOUT_S}s:\n{gateway.log()}")


def _workers_synced(gateway: Gateway) -> bool:
    status = gateway.status()
    clients = status["clients"]
    assert isinstance(clients, list)
    workers = [c for c in clients if c["node"].startswith("ext-proc-")]
    return bool(workers) and all(c["acked"] for c in workers)
